"""/healthz and /metrics of the rotation unit (edge.serving.health): the loop keeps time, the state dir takes
writes; the phase, round, fault and cue latency for Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.exc import RequestError
from edge.rotation.service import RotationService
from edge.rotation.web.context import ctx
from edge.serving.health import CONTENT_TYPE, Health

bp = Blueprint("ops", __name__)
PHASES = ("idle", "work", "warning", "transition", "paused", "done")


class RotationMetrics(Collector):
    """The rotation as it is at scrape time."""

    def __init__(self, rotation: RotationService) -> None:
        self.rotation = rotation

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.rotation.engine.snapshot()
        phase = GaugeMetricFamily("classroom_edge_rotation_phase", "1 for the phase the rotation is in",
                                  labels=["phase"])
        for name in PHASES:
            phase.add_metric([name], 1.0 if snap.phase == name else 0.0)
        yield phase
        yield GaugeMetricFamily("classroom_edge_rotation_round", "The round running (0 when idle)", value=snap.round)
        yield GaugeMetricFamily("classroom_edge_rotation_rounds", "Rounds in the running plan", value=snap.rounds)
        yield GaugeMetricFamily("classroom_edge_rotation_fault", "1 while the fault cue shows",
                                value=1.0 if snap.fault else 0.0)
        yield GaugeMetricFamily("classroom_edge_rotation_quiet", "1 in quiet mode", value=1.0 if snap.quiet else 0.0)


def rotation_health(rotation: RotationService, token: str) -> Health:
    health = Health("rotation", rotation.config.state_dir, token,
                    {"loop": rotation.loop_stalled, "state": lambda: rotation.state_file.error})
    health.registry.register(RotationMetrics(rotation))
    health.registry.register(rotation.cue_latency)
    return health


@bp.get("/healthz")
def healthz() -> Response:
    status, body = ctx().health.report()
    resp = jsonify(body)
    resp.status_code = status
    return resp


@bp.get("/metrics")
def metrics() -> Response:
    health = ctx().health
    if not health.metrics_allowed(request.headers.get("Authorization")):
        raise RequestError(401, "metrics need Authorization: Bearer <the api_token>", key="Authorization",
                           headers={"WWW-Authenticate": 'Bearer realm="classroom-edge metrics"'})
    return Response(health.exposition(), headers={"Content-Type": CONTENT_TYPE})
