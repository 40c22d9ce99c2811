"""Prometheus metrics (``prometheus_client``) and the middleware that feeds them.

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
do not explode the number of series. The HTTP series live in a registry of this server
(not ``prometheus_client``'s global one, so two apps in one process never share counts);
the store's counters are read at scrape time by a collector made for that scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filetier.models import StoreStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UNMATCHED = "(unmatched)"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The exposition format generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """The store's and the content reader's counters, as they are at this scrape."""

    def __init__(self, stats: StoreStats | None, copies: tuple[int, int]) -> None:
        self.stats = stats
        self.copies = copies

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "filetier_http_copies_hashed",
            "Local copies hashed in full before or while being served.",
            value=self.copies[0],
        )
        yield CounterMetricFamily(
            "filetier_http_copies_trusted",
            "Whole downloads of a copy hashed within FILETIER_VERIFIED_COPY_SECONDS, not rehashed.",
            value=self.copies[1],
        )
        stats = self.stats
        if stats is None:
            return
        hits = CounterMetricFamily(
            "filetier_tier_hits", "Reads served, by tier (this process).", labels=("tier",)
        )
        served = CounterMetricFamily(
            "filetier_tier_bytes_served", "Bytes served, by tier (this process).", labels=("tier",)
        )
        for tier, t in sorted(stats.session.items()):
            hits.add_metric((tier,), t.hits)
            served.add_metric((tier,), t.bytes_served)
        yield hits
        yield served
        yield CounterMetricFamily(
            "filetier_primary_reads",
            "Primary-store reads (this process).",
            value=stats.primary_reads,
        )
        yield GaugeMetricFamily(
            "filetier_memory_tier_bytes", "Bytes held by the memory tier.", value=stats.memory_bytes
        )
        yield GaugeMetricFamily(
            "filetier_disk_cache_bytes",
            "Bytes held by the disk cache.",
            value=stats.disk_cache_bytes,
        )


class HttpMetrics:
    """The HTTP series of one server process, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "filetier_http_requests",
            "HTTP requests answered.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "filetier_http_request_duration_seconds",
            "Time from request to last response byte.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "filetier_http_request_body_bytes",
            "Request body bytes read.",
            ("route",),
            registry=self.registry,
        )
        self.bytes_out = Counter(
            "filetier_http_response_body_bytes",
            "Response body bytes sent.",
            ("route",),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "filetier_http_requests_in_flight",
            "Requests being answered now.",
            registry=self.registry,
        )

    def observe(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        self.bytes_in.labels(route).inc(received)
        self.bytes_out.labels(route).inc(sent)

    def render(self, stats: StoreStats | None, copies: tuple[int, int] = (0, 0)) -> str:
        """The exposition text; ``copies`` is (hashed, trusted) from the content reader."""
        snapshot = CollectorRegistry(auto_describe=False)
        snapshot.register(_Snapshot(stats, copies))
        return (generate_latest(self.registry) + generate_latest(snapshot)).decode()


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

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe(
                route_label(scope, self.routes),
                scope["method"] if scope["method"] in METHODS else "OTHER",
                status,
                time.perf_counter() - started,
                received,
                sent,
            )
