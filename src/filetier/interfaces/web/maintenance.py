"""The maintenance pages (operators only): verify, cleanup and gc, each planned before it runs."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from filetier.interfaces.web.charts import human_bytes
from filetier.interfaces.web.guard import Guard, Visitor

Operation = Literal["verify", "cleanup", "gc"]
OPERATIONS: dict[str, tuple[str, str]] = {
    "verify": (
        "Verify",
        "Re-hash every stored object and cached copy against its SHA-256, and check "
        "that rows and objects match. Running it repairs what it can (evicts bad cached "
        "copies, quarantines corrupt objects).",
    ),
    "cleanup": (
        "Cleanup",
        "Evict disk-cache copies older than the maximum age or beyond the size cap, and "
        "remove expired deliveries and stale temporary files.",
    ),
    "gc": (
        "Garbage collection",
        "Delete stored objects and blob rows that no file refers to any more (past the "
        "grace window, so uploads in flight are never collected).",
    ),
}


class MaintenancePages:
    guard: Guard

    async def maintenance(self, request: Request, visitor: Visitor) -> Response:
        return self.guard.render(
            request,
            "maintenance.html",
            {"operations": OPERATIONS, "active": "maintenance"},
            visitor=visitor,
        )

    async def plan(self, request: Request, visitor: Visitor) -> Response:
        return await self._operation(request, visitor, run=False)

    async def run(self, request: Request, visitor: Visitor) -> Response:
        return await self._operation(request, visitor, run=True)

    async def _operation(self, request: Request, visitor: Visitor, *, run: bool) -> Response:
        operation = request.path_params["operation"]
        if operation not in OPERATIONS:
            return self.guard.error_page(
                request, 404, "Not found", f"no maintenance operation {operation[:40]!r}", visitor
            )
        store = visitor.store
        title, about = OPERATIONS[operation]
        context: dict[str, object] = {
            "operation": operation,
            "title": title,
            "about": about,
            "run": run,
            "active": "maintenance",
            "human": human_bytes,
        }
        if operation == "verify":
            report = await store.verify(fix=run)
            context["verify"] = report
            context["pending"] = bool(report.findings) and not run
        else:
            plan = (
                await store.cleanup_cache(dry_run=not run)
                if operation == "cleanup"
                else await store.gc(dry_run=not run)
            )
            context["plan"] = plan
            context["pending"] = bool(plan.actions) and not run
        return self.guard.render(request, "operation.html", context, visitor=visitor)
