"""Prometheus metrics of the web service, served at `/metrics`.

- `paretoboard_http_request_duration_seconds{method,route,status}`: request latency, by route
  template (never the raw path, so ids do not explode the label set).
- `paretoboard_queue_depth{queue}`: messages waiting in each broker queue (read at scrape time).
- `paretoboard_dependency_up{dependency}`: 1 when the database / the broker answered just now.
- `paretoboard_submissions{state}`: submissions per state (read at scrape time).
- `paretoboard_board_refreshes_in_flight`, `paretoboard_board_stale_served`: leaderboards being
  recomputed in the background, and reads answered from the previous board version meanwhile
  (`core.leaderboard.cache` rule 4), in the process that answers the scrape.

With several server processes (`paretoboard serve --workers N`), PROMETHEUS_MULTIPROC_DIR is set
before prometheus_client is imported (the serve command does it): every process writes its
values to files there and `/metrics` merges them, whichever process answers the scrape.
The worker-side metrics (evaluations, sandbox failures) are served by each worker on its own
port (`paretoboard worker --metrics-port`), see worker/metrics.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.leaderboard.cache import cache
from core.settings import Settings
from server import probes

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "<unmatched>"

REQUEST_SECONDS = Histogram(
    "paretoboard_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class MetricsMiddleware:
    """Times every HTTP request (pure ASGI: streaming bodies pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            REQUEST_SECONDS.labels(
                method=scope.get("method", ""), route=template, status=str(status)
            ).observe(time.perf_counter() - started)


class LiveCollector(Collector):
    """Values read from the database and the broker at scrape time (not per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterable[Metric]:
        db = probes.database(self.settings)
        broker = probes.broker(self.settings)
        up = GaugeMetricFamily(
            "paretoboard_dependency_up",
            "1 when the dependency answered this scrape, else 0",
            labels=["dependency"],
        )
        up.add_metric(["database"], 1.0 if db.ok else 0.0)
        up.add_metric(["broker"], 1.0 if broker.ok else 0.0)
        yield up
        yield GaugeMetricFamily(
            "paretoboard_board_refreshes_in_flight",
            "Leaderboards being recomputed in the background in this process",
            value=float(cache.in_flight),
        )
        yield GaugeMetricFamily(
            "paretoboard_board_stale_served",
            "Reads answered from the previous board version while it was recomputed",
            value=float(cache.stale_hits),
        )
        depths = probes.queue_depths(self.settings) if broker.ok else None
        if depths is not None:  # absent, not 0, when the broker cannot say
            depth = GaugeMetricFamily(
                "paretoboard_queue_depth", "Messages waiting in a broker queue", labels=["queue"]
            )
            for queue, n in depths.items():
                depth.add_metric([queue], float(n))
            yield depth
        states = probes.submissions_by_state(self.settings) if db.ok else None
        if states is not None:
            subs = GaugeMetricFamily(
                "paretoboard_submissions", "Submissions in each state", labels=["state"]
            )
            for state, n in sorted(states.items()):
                subs.add_metric([state], float(n))
            yield subs


def exposition(settings: Settings) -> bytes:
    """The text served at /metrics: this service's processes, then the live values."""
    if os.environ.get(MULTIPROC_ENV):
        merged = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        recorded = generate_latest(merged)
    else:
        recorded = generate_latest(REGISTRY)
    live = CollectorRegistry(auto_describe=False)
    live.register(LiveCollector(settings))
    return recorded + generate_latest(live)
