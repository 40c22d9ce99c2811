"""The overview page: store statistics, tier charts, and (for operators) provider quota use."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from filetier.interfaces.web.charts import bar_chart, gauge_chart, human_bytes
from filetier.interfaces.web.guard import Guard, Visitor
from filetier.models import StoreStats


@dataclass(frozen=True, slots=True)
class ProviderUse:
    name: str
    copies: int
    bytes: int
    max_files: int | None
    max_bytes: int | None


class OverviewPages:
    guard: Guard

    async def overview(self, request: Request, visitor: Visitor) -> Response:
        stats = await visitor.store.stats()
        providers = await self._providers(visitor) if visitor.operator else None
        return self.guard.render(
            request,
            "overview.html",
            {
                "stats": stats,
                "human": human_bytes,
                **self._charts(stats),
                "providers": providers,
                "local_primary": stats.disk_cache_max_bytes > 0
                and stats.disk_cache_entries == 0
                and stats.disk_cache_bytes == 0,
                "active": "overview",
            },
            visitor=visitor,
        )

    @staticmethod
    def _charts(stats: StoreStats) -> dict[str, object]:
        names = ("memory", "disk", "primary")
        rates = stats.hit_rates
        return {
            "tier_rows": [
                (
                    name,
                    stats.tiers[name].hits,
                    rates.get(name, 0.0),
                    human_bytes(stats.tiers[name].bytes_served),
                )
                for name in names
            ],
            "hits_chart": bar_chart(
                "Reads served by each tier",
                [
                    (
                        name.capitalize(),
                        rates.get(name, 0.0),
                        f"{rates.get(name, 0.0):.0%} ({stats.tiers[name].hits:,})",
                        f"tier-{name}",
                    )
                    for name in names
                ],
                maximum=1.0,
                track=True,
            ),
            "bytes_chart": bar_chart(
                "Bytes served by each tier",
                [
                    (
                        name.capitalize(),
                        float(stats.tiers[name].bytes_served),
                        human_bytes(stats.tiers[name].bytes_served),
                        f"tier-{name}",
                    )
                    for name in names
                ],
            ),
            "cache_chart": gauge_chart(
                "Cache sizes against their caps",
                [
                    (
                        "Memory",
                        stats.memory_bytes,
                        stats.memory_max_bytes,
                        f"{human_bytes(stats.memory_bytes)} of {human_bytes(stats.memory_max_bytes)}",
                        "tier-memory",
                    ),
                    (
                        "Disk cache",
                        stats.disk_cache_bytes,
                        stats.disk_cache_max_bytes,
                        f"{human_bytes(stats.disk_cache_bytes)} of "
                        f"{human_bytes(stats.disk_cache_max_bytes)}",
                        "tier-disk",
                    ),
                ],
            ),
        }

    @staticmethod
    async def _providers(visitor: Visitor) -> dict[str, object]:
        """Copies and quota use per configured provider account (the operator's)."""
        manager = visitor.store.providers
        rows: list[ProviderUse] = []
        for name in manager.configured():
            client = manager.provider(name)
            count, used = await manager.repo.usage(client.name, client.account)
            limits = client.limits
            rows.append(
                ProviderUse(client.name, count, used, limits.max_files, limits.max_total_bytes)
            )
        gauges: list[tuple[str, float, float, str, str]] = []
        for row in rows:
            files_text = (
                f"{row.copies:,} of {row.max_files:,}"
                if row.max_files
                else f"{row.copies:,} (no limit)"
            )
            gauges.append(
                (f"{row.name} files", row.copies, row.max_files or 0, files_text, "tier-provider")
            )
        for row in rows:
            used_text = human_bytes(row.bytes)
            bytes_text = (
                f"{used_text} of {human_bytes(row.max_bytes)}"
                if row.max_bytes
                else f"{used_text} (no limit)"
            )
            gauges.append(
                (f"{row.name} bytes", row.bytes, row.max_bytes or 0, bytes_text, "tier-provider")
            )
        return {"rows": rows, "chart": gauge_chart("Provider quota use", gauges)}
