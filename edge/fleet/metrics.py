"""The collector's own `GET /metrics` (Prometheus text format): the fleet as the district's Prometheus sees it,
so offline units and faults alert through the monitoring IT already runs.

A registry per app (no process-global state); values are read from the store at scrape time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

Views = list[dict[str, Any]]


class FleetMetrics(Collector):
    """Collects from the last `snapshot` (taken by the /metrics handler just before rendering)."""

    def __init__(self, counters: Callable[[], dict[str, int]]) -> None:
        self.counters = counters
        self.snapshot: Views = []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        units = GaugeMetricFamily("classroom_edge_fleet_units", "Units known to the collector",
                                  labels=["school", "status"])
        faulty = GaugeMetricFamily("classroom_edge_fleet_units_faulty", "Units reporting at least one fault",
                                   labels=["school"])
        per_school: dict[str, dict[str, int]] = {}
        for u in self.snapshot:
            s = per_school.setdefault(u["school"], {"online": 0, "offline": 0, "faulty": 0})
            s[u["status"]] += 1
            s["faulty"] += bool(u["faults"])
        for school, s in sorted(per_school.items()):
            units.add_metric([school, "online"], s["online"])
            units.add_metric([school, "offline"], s["offline"])
            faulty.add_metric([school], s["faulty"])
        yield units
        yield faulty
        labels = ["unit", "school", "room"]
        seen = GaugeMetricFamily("classroom_edge_fleet_unit_last_seen_age_seconds",
                                 "Seconds since the unit's last heartbeat", labels=labels)
        backlog = GaugeMetricFamily("classroom_edge_fleet_unit_backlog_statements",
                                    "Statements the unit has not yet delivered to the district LRS", labels=labels)
        oldest = GaugeMetricFamily("classroom_edge_fleet_unit_oldest_unsent_age_seconds",
                                   "Age of the unit's oldest undelivered statement", labels=labels)
        disk = GaugeMetricFamily("classroom_edge_fleet_unit_disk_free_bytes",
                                 "Free bytes on the unit's state file system", labels=labels)
        for u in self.snapshot:
            key = [u["id"], u["school"], u["room"]]
            seen.add_metric(key, u["last_seen_age_s"])
            if u["backlog"] is not None:
                backlog.add_metric(key, u["backlog"])
            if u["oldest_unsent_age_s"] is not None:
                oldest.add_metric(key, u["oldest_unsent_age_s"])
            if u["disk_free_bytes"] is not None:
                disk.add_metric(key, u["disk_free_bytes"])
        yield from (seen, backlog, oldest, disk)
        counts = self.counters()
        received = CounterMetricFamily("classroom_edge_fleet_heartbeats", "Heartbeats stored since start")
        received.add_metric([], counts["received"])
        refused = CounterMetricFamily("classroom_edge_fleet_heartbeats_refused",
                                      "Heartbeats refused (token, body, bounds) since start")
        refused.add_metric([], counts["refused"])
        yield received
        yield refused


class Exposition:
    def __init__(self, counters: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.fleet = FleetMetrics(counters)
        self.registry.register(self.fleet)

    async def render(self, views: Callable[[], Awaitable[Views]]) -> bytes:
        self.fleet.snapshot = await views()
        return generate_latest(self.registry)

