"""/healthz and /metrics of the mastery service (edge.serving.health): the store takes writes and its writer runs;
intake requests and their latency, stored statements and evidence, and the district sync for Prometheus."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime

from aiohttp import web
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.config import EdgeConfig
from edge.serving.aio import Handler
from edge.serving.health import Check, Health
from edge.sync.status import outbox_path, sync_status

INTAKE_PATHS = ("/xapi/statements", "/api/v1/evidence")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


STORE_COUNTS = (("statements", "xAPI statements stored"), ("evidence", "Evidence items stored"))
SYNC_GAUGES = (
    ("classroom_edge_sync_backlog_statements", "Statements waiting for the district LRS"),
    ("classroom_edge_sync_oldest_unsent_age_seconds", "Age of the oldest unsent statement"),
    ("classroom_edge_sync_quarantined_statements", "Statements the LRS keeps refusing"),
    ("classroom_edge_sync_last_success_timestamp_seconds", "When a sync round last reached the LRS (0: never)"),
)


class StoreMetrics(Collector):
    """Counts from the store and the outbox, read through a read-only connection at scrape time."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The names only: registering must not read a store that may not be open (or upgraded) yet."""
        for table, doc in STORE_COUNTS:
            yield CounterMetricFamily(f"classroom_edge_mastery_{table}", doc)
        for name, doc in SYNC_GAUGES:
            yield GaugeMetricFamily(name, doc)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        path = outbox_path(self.config)
        if path.exists():
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0) as db:
                for table, doc in STORE_COUNTS:
                    try:
                        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
                    except sqlite3.OperationalError:  # a store from before that table: the service adds it
                        continue
                    yield CounterMetricFamily(f"classroom_edge_mastery_{table}", doc, value=float(n))
        status = sync_status(self.config)
        last = status.get("last_success")
        values = (status["backlog"], status["oldest_unsent_age_s"] or 0.0, status["quarantined"],
                  0.0 if not last else datetime.fromisoformat(last).timestamp())
        for (name, doc), value in zip(SYNC_GAUGES, values, strict=True):
            yield GaugeMetricFamily(name, doc, value=float(value))


class IntakeMetrics:
    """Intake requests by status and their latency (a middleware observes them)."""

    def __init__(self, health: Health) -> None:
        self.requests = Counter("classroom_edge_intake_requests", "Evidence and statement requests",
                                ["status"], registry=health.registry)
        self.latency = Histogram("classroom_edge_intake_latency_seconds", "Time to store and answer an intake "
                                 "request", buckets=LATENCY_BUCKETS, registry=health.registry)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("POST", "PUT") or request.path not in INTAKE_PATHS:
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        except Exception as e:
            status = getattr(e, "status", 500)
            raise
        finally:
            self.requests.labels(str(status)).inc()
            self.latency.observe(time.perf_counter() - started)


def mastery_health(config: EdgeConfig, writer: Check) -> tuple[Health, IntakeMetrics]:
    """The service's health (storage, disk and `writer`: whether the store's writer runs) and intake metrics."""
    health = Health("mastery", config.state_dir, config.web.api_token, {"writer": writer})
    health.registry.register(StoreMetrics(config))
    return health, IntakeMetrics(health)
