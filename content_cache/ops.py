"""/healthz and /metrics of the lesson cache (edge.serving.health): the cache dir takes writes and has room;
hits, misses, coalesced downloads, bytes and each origin's health for Prometheus (summed over every worker)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from content_cache.service import CacheService
from edge.config import EdgeConfig
from edge.serving.health import Health

COUNTERS = {
    "hits": "Requests answered from a fresh stored copy",
    "misses": "Requests that started a download",
    "coalesced": "Requests that joined a download already running (the storm case)",
    "stale": "Requests answered from a stale copy (upstream down or revalidating)",
    "revalidated": "Stored copies refreshed by a 304 from upstream",
    "bytes_served": "Body bytes sent to clients",
    "bytes_fetched": "Body bytes received from upstream",
    "upstream_errors": "Downloads that failed upstream",
    "upstream_requests": "Requests made to upstream",
    "evictions": "Objects evicted to stay under max_bytes",
}


class CacheMetrics(Collector):
    def __init__(self, svc: CacheService) -> None:
        self.svc = svc

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snap = self.svc.snapshot()
        for name, doc in COUNTERS.items():
            yield CounterMetricFamily(f"classroom_edge_cache_{name}", doc, value=float(snap.get(name, 0)))
        yield GaugeMetricFamily("classroom_edge_cache_objects", "Objects stored", value=snap["objects"])
        yield GaugeMetricFamily("classroom_edge_cache_bytes_stored", "Bytes stored", value=snap["bytes_stored"])
        yield GaugeMetricFamily("classroom_edge_cache_pinned", "Objects pinned (never evicted)", value=snap["pinned"])
        healthy = GaugeMetricFamily("classroom_edge_cache_upstream_healthy",
                                    "1 when no worker is backing off from the origin", labels=["origin"])
        for origin, h in sorted(snap["upstreams"].items()):
            healthy.add_metric([origin], 1.0 if h["healthy"] else 0.0)
        yield healthy


def cache_health(config: EdgeConfig, svc: CacheService) -> Health:
    health = Health("cache", config.cache_dir, config.web.api_token)
    health.registry.register(CacheMetrics(svc))
    return health
