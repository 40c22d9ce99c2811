"""Prometheus metrics: a registry small enough to read, and the middleware that feeds it.

Exposed at ``/metrics`` in the text exposition format (version 0.0.4)::

    filetier_http_requests_total{route,method,status}        counter
    filetier_http_request_duration_seconds{route,method}     histogram (until the last byte)
    filetier_http_request_body_bytes_total{route}            counter (bytes in)
    filetier_http_response_body_bytes_total{route}           counter (bytes out)
    filetier_http_requests_in_flight                         gauge
    filetier_tier_hits_total{tier}                           counter (this process)
    filetier_tier_bytes_served_total{tier}                   counter (this process)
    filetier_primary_reads_total                             counter (this process)
    filetier_memory_tier_bytes, filetier_disk_cache_bytes    gauges
    filetier_http_copies_hashed_total                        counter (full SHA-256 passes)
    filetier_http_copies_trusted_total                       counter (served in the window)

``route`` is the route's template (``/v1/files/{file_id}``), never the raw path, so ids
do not explode the number of series. ``prometheus_client`` is not a dependency: the
format is a few lines of text.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filetier.models import StoreStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UNMATCHED = "(unmatched)"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


class HttpMetrics:
    """Counters of one server process (one event loop: no locks needed)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.bytes_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def observe(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        self.requests[(route, method, str(status))] += 1
        histogram = self.latency.get((route, method))
        if histogram is None:
            histogram = self.latency[(route, method)] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)
        self.bytes_in[route] += received
        self.bytes_out[route] += sent

    def render(self, stats: StoreStats | None, copies: tuple[int, int] = (0, 0)) -> str:
        """The exposition text; ``copies`` is (hashed, trusted) from the content reader."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("filetier_http_requests_total", "counter", "HTTP requests answered.")
        for (route, method, status), n in sorted(self.requests.items()):
            labels = _labels(("route", "method", "status"), (route, method, status))
            out.append(f"filetier_http_requests_total{labels} {n}")

        name = "filetier_http_request_duration_seconds"
        family(name, "histogram", "Time from request to last response byte.")
        for (route, method), hist in sorted(self.latency.items()):
            cumulative = 0
            for bound, n in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                labels = _labels(("route", "method", "le"), (route, method, le))
                out.append(f"{name}_bucket{labels} {cumulative}")
            labels = _labels(("route", "method"), (route, method))
            out.append(f"{name}_sum{labels} {hist.total!r}")
            out.append(f"{name}_count{labels} {hist.count}")

        family("filetier_http_request_body_bytes_total", "counter", "Request body bytes read.")
        for route, n in sorted(self.bytes_in.items()):
            out.append(f"filetier_http_request_body_bytes_total{_labels(('route',), (route,))} {n}")
        family("filetier_http_response_body_bytes_total", "counter", "Response body bytes sent.")
        for route, n in sorted(self.bytes_out.items()):
            labels = _labels(("route",), (route,))
            out.append(f"filetier_http_response_body_bytes_total{labels} {n}")

        family("filetier_http_requests_in_flight", "gauge", "Requests being answered now.")
        out.append(f"filetier_http_requests_in_flight {self.in_flight}")

        family(
            "filetier_http_copies_hashed_total",
            "counter",
            "Local copies hashed in full before or while being served.",
        )
        out.append(f"filetier_http_copies_hashed_total {copies[0]}")
        family(
            "filetier_http_copies_trusted_total",
            "counter",
            "Whole downloads of a copy hashed within FILETIER_VERIFIED_COPY_SECONDS, not rehashed.",
        )
        out.append(f"filetier_http_copies_trusted_total {copies[1]}")

        if stats is not None:
            family("filetier_tier_hits_total", "counter", "Reads served, by tier (this process).")
            for tier, t in sorted(stats.session.items()):
                out.append(f"filetier_tier_hits_total{_labels(('tier',), (tier,))} {t.hits}")
            family(
                "filetier_tier_bytes_served_total",
                "counter",
                "Bytes served, by tier (this process).",
            )
            for tier, t in sorted(stats.session.items()):
                labels = _labels(("tier",), (tier,))
                out.append(f"filetier_tier_bytes_served_total{labels} {t.bytes_served}")
            family("filetier_primary_reads_total", "counter", "Primary-store reads (this process).")
            out.append(f"filetier_primary_reads_total {stats.primary_reads}")
            family("filetier_memory_tier_bytes", "gauge", "Bytes held by the memory tier.")
            out.append(f"filetier_memory_tier_bytes {stats.memory_bytes}")
            family("filetier_disk_cache_bytes", "gauge", "Bytes held by the disk cache.")
            out.append(f"filetier_disk_cache_bytes {stats.disk_cache_bytes}")
        return "\n".join(out) + "\n"


def _template(route: object) -> str | None:
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else None


def route_label(scope: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The route template of a request, also for those answered before routing (401)."""
    path: str = scope.get("path", "")
    if path == "/mcp" or path.startswith("/mcp/"):
        return "/mcp"
    routed = _template(scope.get("route"))
    if routed is not None:
        return routed
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE and (template := _template(route)) is not None:
            return template
    return UNMATCHED


class MetricsMiddleware:
    """Outermost middleware: counts every HTTP request, its bytes and its duration."""

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.in_flight -= 1
            self.metrics.observe(
                route_label(scope, self.routes),
                scope["method"] if scope["method"] in METHODS else "OTHER",
                status,
                time.perf_counter() - started,
                received,
                sent,
            )
