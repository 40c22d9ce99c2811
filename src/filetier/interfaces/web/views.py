"""The console's pages: each parses its request, asks the owner's store, renders a template.

Nothing here decides who may see what: the :class:`~filetier.interfaces.web.guard.Guard`
hands every page a store already scoped to the signed-in owner (the API's own scoping),
and uploads and downloads go through the API's own endpoints.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from filetier.errors import InvalidInputError, StorageUnavailableError
from filetier.interfaces.common.links import DEFAULT_EXPIRES_IN, mint_link
from filetier.interfaces.http import routes
from filetier.interfaces.http.headers import content_disposition
from filetier.interfaces.web.charts import human_bytes
from filetier.interfaces.web.guard import Guard, Visitor, secure, small_form, wants_json
from filetier.interfaces.web.maintenance import MaintenancePages
from filetier.interfaces.web.overview import OverviewPages
from filetier.models import FileRecord, FileSort

PAGE_SIZE = 50
MAX_PAGE = 100_000  # 5 million files deep: past it a page number is noise, not a request
TEXT_PREVIEW_MAX = 256 * 1024
# Shown inline from user content: raster images and PDF only. SVG and HTML never are
# (they can carry script); text is shown escaped inside the page instead.
IMAGE_PREVIEW_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
PDF_TYPE = "application/pdf"
TEXT_LIKE_TYPES = frozenset(
    {"application/json", "application/xml", "application/x-yaml", "application/yaml"}
)
TYPE_FILTERS = (
    ("", "All types"),
    ("image/*", "Images"),
    ("text/*", "Text"),
    ("application/pdf", "PDF"),
    ("application/*", "Documents and data"),
    ("audio/*", "Audio"),
    ("video/*", "Video"),
)
SORT_COLUMNS = (
    ("name", "Name"),
    ("size", "Size"),
    ("type", "Type"),
    ("uploaded", "Uploaded"),
    ("accessed", "Last access"),
)
# The lifetimes "Copy link" offers; those longer than FILETIER_LINK_MAX_SECONDS are left
# out and the maximum itself is offered, so the choice always fits the setting.
LINK_LIFETIMES = (15 * 60, 3600, 24 * 3600, 7 * 24 * 3600)


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _remaining(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return "no expiry"
    seconds = (expires - now).total_seconds()
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(int(seconds), 3600)
    if hours >= 48:
        return f"{hours // 24} days left"
    return f"{hours} h {rest // 60} min left"


def _duration(seconds: int) -> str:
    for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= unit and seconds % unit == 0:
            count = seconds // unit
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def link_lifetimes(longest: int) -> tuple[list[tuple[int, str]], int]:
    """The lifetimes to offer for a link, and the one selected at first."""
    offered = [seconds for seconds in LINK_LIFETIMES if seconds <= longest]
    if longest not in offered:
        offered.append(longest)
    return [(seconds, _duration(seconds)) for seconds in offered], min(DEFAULT_EXPIRES_IN, longest)


def _query(**params: str | int | None) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


class Pages(OverviewPages, MaintenancePages):
    """Every page of the console: the file pages here, the others from their modules."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    # -- files --------------------------------------------------------------------------

    async def files(self, request: Request, visitor: Visitor) -> Response:
        params = request.query_params
        name = (params.get("q") or "").strip()[:200] or None
        if name is not None and "\x00" in name:
            raise InvalidInputError("the search must not contain a NUL character")
        mime = params.get("type") or None
        if mime is not None and mime not in {value for value, _ in TYPE_FILTERS}:
            raise InvalidInputError(f"unknown type filter {mime[:40]!r}")
        sort = params.get("sort") or "-uploaded"
        if sort not in get_args(FileSort):
            sort = "-uploaded"
        page_number = params.get("page") or "1"
        page_index = min(max(1, int(page_number)), MAX_PAGE) if page_number.isdigit() else 1
        page = await visitor.store.list(
            name_contains=name,
            mime_type=mime,
            sort=sort,  # type: ignore[arg-type]  # checked against FileSort above
            limit=PAGE_SIZE,
            offset=(page_index - 1) * PAGE_SIZE,
        )
        pages = max(1, math.ceil(page.total / PAGE_SIZE))

        def link(**change: str | int | None) -> str:
            current: dict[str, str | int | None] = {
                "q": name,
                "type": mime,
                "sort": None if sort == "-uploaded" else sort,
                "page": page_index if page_index > 1 else None,
            }
            current.update(change)
            return "/files" + _query(**current)

        columns = []
        for key, label in SORT_COLUMNS:
            active = sort.lstrip("-") == key
            descending = sort.startswith("-")
            flipped = ("" if descending else "-") + key if active else key
            columns.append(
                {
                    "label": label,
                    "numeric": key == "size",
                    "href": link(sort=flipped, page=None),
                    "aria_sort": ("descending" if descending else "ascending") if active else None,
                }
            )
        return self.guard.render(
            request,
            "files.html",
            {
                "page": page,
                "rows": [self._row(record) for record in page.items],
                "q": name or "",
                "type": mime or "",
                "type_filters": TYPE_FILTERS,
                "sort": sort,
                "columns": columns,
                "page_index": page_index,
                "pages": pages,
                "prev_href": link(page=page_index - 1) if page_index > 1 else None,
                "next_href": link(page=page_index + 1) if page.next_offset is not None else None,
                "flash": visitor.session.take_flash(),
                "max_file_size": human_bytes(visitor.store.settings.max_file_size),
                **self._lifetimes(visitor),
                "active": "files",
            },
            visitor=visitor,
        )

    @staticmethod
    def _row(record: FileRecord) -> dict[str, object]:
        return {
            "id": str(record.file_id),
            "name": record.filename,
            "size": human_bytes(record.size),
            "type": record.mime_type,
            "uploaded": _when(record.upload_date),
            "accessed": _when(record.last_accessed),
            "providers": sorted(record.provider_file_ids),
        }

    async def upload(self, request: Request, visitor: Visitor) -> Response:
        # The API's own upload: the same limits, quota checks, type rules and answers.
        return await routes.upload_file(request)

    async def file(self, request: Request, visitor: Visitor) -> Response:
        store = visitor.store
        record = await store.stat(request.path_params["file_id"])
        try:
            in_primary: bool | None = await store.primary.head(record.storage_key) is not None
        except StorageUnavailableError:
            in_primary = None  # shown as "unknown": the page still renders
        tiers = [
            ("Memory", record.sha256 in store.memory),
            ("Disk cache", store.disk.path_for(record.sha256).is_file()),
            ("Primary store", in_primary),
        ]
        now = datetime.now(UTC)
        copies = [
            {
                "provider": copy.provider,
                "purpose": copy.purpose,
                "id": copy.provider_file_id,
                "status": copy.status,
                "uploaded": _when(copy.uploaded_at),
                "remaining": _remaining(copy.expires_at, now),
            }
            for copy in await store.provider_copies(record.file_id)
        ]
        history = await store.history(record.file_id, limit=20)
        preview, text = self._preview_kind(record), None
        if preview == "text":
            text = (await store.read_bytes(record.file_id)).decode("utf-8", errors="replace")
        return self.guard.render(
            request,
            "file.html",
            {
                "record": record,
                "row": self._row(record),
                "metadata_items": sorted(record.metadata.items()),
                "tiers": tiers,
                "copies": copies,
                "history": [
                    {
                        "when": _when(event.downloaded_at),
                        "tier": event.tier,
                        "bytes": human_bytes(event.bytes),
                        "verified": event.verified,
                        "by": event.downloaded_by or "",
                    }
                    for event in history
                ],
                "any_by": any(event.downloaded_by for event in history),
                "preview": preview,
                "text": text,
                "text_too_large": preview is None and self._is_text(record),
                **self._lifetimes(visitor),
                "active": "files",
            },
            visitor=visitor,
        )

    @staticmethod
    def _lifetimes(visitor: Visitor) -> dict[str, object]:
        offered, default = link_lifetimes(visitor.store.settings.link_max_seconds)
        return {"link_lifetimes": offered, "link_default": default}

    @staticmethod
    def _is_text(record: FileRecord) -> bool:
        return record.mime_type.startswith("text/") or record.mime_type in TEXT_LIKE_TYPES

    def _preview_kind(self, record: FileRecord) -> str | None:
        if record.mime_type in IMAGE_PREVIEW_TYPES:
            return "image"
        if record.mime_type == PDF_TYPE:
            return "pdf"
        if self._is_text(record) and record.size <= TEXT_PREVIEW_MAX:
            return "text"
        return None

    async def download(self, request: Request, visitor: Visitor) -> Response:
        return await routes.file_content(request)

    async def preview(self, request: Request, visitor: Visitor) -> Response:
        record = await visitor.store.stat(request.path_params["file_id"])
        kind = self._preview_kind(record)
        if kind not in {"image", "pdf"}:
            return self.guard.error_page(
                request, 404, "No preview", "this file has no inline preview", visitor
            )
        response = await routes.file_content(request)
        response.headers["content-disposition"] = content_disposition(record.filename, "inline")
        if kind == "pdf":
            # Chromium's PDF viewer does not run in a sandboxed document; the page that
            # frames it is this console, and nothing else may.
            response.headers["content-security-policy"] = "frame-ancestors 'self'"
            response.headers["x-frame-options"] = "SAMEORIGIN"
        return response

    async def confirm_delete(self, request: Request, visitor: Visitor) -> Response:
        record = await visitor.store.stat(request.path_params["file_id"])
        return self.guard.render(
            request,
            "delete.html",
            {"record": record, "row": self._row(record), "active": "files"},
            visitor=visitor,
        )

    async def delete(self, request: Request, visitor: Visitor) -> Response:
        store = visitor.store
        record = await store.stat(request.path_params["file_id"])
        await store.delete(record.file_id)
        visitor.session.flash = f"Deleted {record.filename}."
        return secure(RedirectResponse("/files", status_code=303))

    async def link(self, request: Request, visitor: Visitor) -> Response:
        """Mint a signed link to the owner's file with the API's own minting code (the same
        limits, rows and revocation); the script asks for JSON, a plain form gets a page."""
        store = visitor.store
        record = await store.stat(request.path_params["file_id"])
        form = await small_form(request)
        chosen = form.get("expires_in") if form is not None else None
        chosen = chosen.strip() if isinstance(chosen, str) else ""
        # ASCII digits only and short: "²" passes isdigit() and int() refuses very long
        # numbers; both would otherwise be a 500. The range itself is mint()'s rule.
        if not (chosen.isascii() and chosen.isdigit() and len(chosen) <= 12):
            raise InvalidInputError("the link lifetime must be a whole number of seconds")
        answer = await mint_link(
            self.guard.runtime.link_authority(),
            store,
            record,
            request_base=str(request.base_url),
            expires_in=int(chosen),
            single_use=False,
            range_header=None,
            direct=False,
        )
        expires = _when(datetime.fromisoformat(answer["expires_at"]))
        if wants_json(request):
            return secure(
                JSONResponse(
                    {
                        "url": answer["url"],
                        "link_id": answer["link_id"],
                        "expires_at": answer["expires_at"],
                        "expires": expires,
                        "filename": record.filename,
                    },
                    status_code=201,
                )
            )
        return self.guard.render(
            request,
            "link.html",
            {
                "record": record,
                "row": self._row(record),
                "url": answer["url"],
                "expires": expires,
                **self._lifetimes(visitor),
                "active": "files",
            },
            visitor=visitor,
        )
