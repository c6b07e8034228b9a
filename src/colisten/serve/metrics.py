"""Prometheus metrics for the server: request counts, latency histogram, model version.

Each app gets its own CollectorRegistry, so several apps (tests, a reload) never clash, and a
pure ASGI middleware records every request under its route template (never the raw path, which
would make one time series per user id).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets around the serving goal (p99 <= 25 ms) with room on both sides.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    """The server's metrics in a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "colisten_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "colisten_http_request_duration_seconds",
            "Time from request start to the end of the response body, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "colisten_http_requests_in_flight", "Requests being served now.", registry=self.registry
        )
        self.model_info = Gauge(
            "colisten_model_info",
            "1 for the model version being served (labels: version, run directory).",
            ["version", "run"],
            registry=self.registry,
        )
        self.model_loaded_at = Gauge(
            "colisten_model_loaded_timestamp_seconds",
            "Unix time the served model was swapped in.",
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "colisten_model_load_seconds", "Seconds the served model took to load.", registry=self.registry
        )
        self.reloads = Counter(
            "colisten_model_reloads",
            "Model reloads by outcome (swapped or failed).",
            ["outcome"],
            registry=self.registry,
        )
        self._served: tuple[str, str] | None = None

    def set_model(self, version: str, run: str, load_seconds: float) -> None:
        """Point the version gauge at the newly swapped-in model."""
        if self._served is not None:
            self.model_info.remove(*self._served)
        self._served = (version, run)
        self.model_info.labels(version, run).set(1)
        self.model_loaded_at.set(time.time())
        self.model_load_seconds.set(load_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
