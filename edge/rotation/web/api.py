"""JSON API under /api/v1/ (documented in openapi.py, served at /api/v1/openapi.json).

GET /rotation is public (the board and student pages use it; it carries no student ids). Everything else
needs the teacher session (+ X-CSRF-Token on writes) or `Authorization: Bearer <[web] api_token>`.
Views raise RequestError; the app answers it in the one JSON error shape (edge.serving.errors).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from edge.exc import ConfigError, EdgeError, GroupingError, MasteryUnavailable, PlanError, RequestError, RotationError
from edge.limits import SKILL_MAX, name_problem
from edge.rotation.engine import ACTIONS
from edge.rotation.groups.model import defaults
from edge.rotation.periods import parse_periods, period_json, periods_starting
from edge.rotation.plan import Plan, parse_plan
from edge.rotation.store import slug
from edge.rotation.web import regroup
from edge.rotation.web.auth import api_authorise
from edge.rotation.web.context import ctx
from edge.rotation.web.openapi import spec
from edge.rotation.web.state import state_json
from edge.serving import jsontext

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
BODY = "<request body>"
PUBLIC = {"api.rotation", "api.openapi"}  # endpoints open to all


def invalid(e: ConfigError) -> RequestError:
    """A validation failure as the 422 naming the key."""
    return RequestError(422, str(e), key=e.key, reason=e.reason)


@bp.before_request
def _authorise() -> None:
    if request.endpoint not in PUBLIC:
        api_authorise()


def _single_valued(*names: str) -> None:
    """Each of these query parameters at most once (400 otherwise: which value was meant is unknown)."""
    for name in names:
        if len(request.args.getlist(name)) > 1:
            raise RequestError(400, f"query parameter {name} is given more than once", key=name)


def _body() -> dict[str, Any]:
    if not request.content_length and not request.data:
        return {}
    try:
        data = jsontext.loads(request.get_data()) if request.is_json else None
    except ValueError as e:  # not JSON, NaN, too deep, a lone surrogate...: jsontext names it
        raise RequestError(400, f"the request body must be a JSON object: {e}", key="body") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object", key="body")
    return data


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec())


@bp.get("/rotation")
def rotation() -> Response:
    resp = jsonify(state_json(ctx()))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post(f"/rotation/<any({', '.join(ACTIONS)}):action>")
def rotation_action(action: str) -> Response:
    c = ctx()
    body = _body()
    plan: Plan | None = None
    if action == "start":
        name = body.get("plan")
        if not isinstance(name, str) or not name:
            raise RequestError(400, "start needs {\"plan\": \"<saved plan name>\"}", key="plan")
        plan = _saved(name)
    try:
        snap = c.rotation.engine.act(action, plan)
    except RotationError as e:
        raise RequestError(409, str(e)) from None
    log.info("api: %s", action)
    return jsonify(state_json(c, snap, plan or c.rotation.engine.plan))


def plan_json(plan: Plan) -> dict[str, Any]:
    doc: dict[str, Any] = plan.to_toml()["plan"]
    doc.setdefault("rounds", 0)
    return doc


def _summary(plan: Plan) -> dict[str, Any]:
    return {"name": plan.name, "stations": len(plan.stations), "groups": len(plan.groups),
            "rounds": plan.round_count, "total_s": plan.total_s}


@bp.get("/plans")
def plans() -> Response:
    store = ctx().plans
    return jsonify({"plans": [_summary(p) for p in store.plans()], "broken": [b.message for b in store.broken()]})


def _saved(name: str) -> Plan:
    try:
        return ctx().plans.get(name)
    except PlanError:
        raise RequestError(404, f"no saved plan called {name!r}", key="name") from None


def _parse(body: dict[str, Any]) -> Plan:
    doc = dict(body)
    if doc.get("rounds") == 0:
        doc.pop("rounds")  # 0 = one round per station, as plan_json shows it
    try:
        return parse_plan({"plan": doc}, BODY)
    except PlanError as e:
        raise invalid(e) from None


@bp.post("/plans")
def plan_create() -> Response:
    c = ctx()
    plan = _parse(_body())
    with c.write_lock:
        if any(slug(p.name) == slug(plan.name) for p in c.plans.plans()):
            raise RequestError(409, f"a saved plan called {plan.name!r} exists (PUT /plans/{{name}} replaces it)",
                               key="name")
        c.plans.save(plan)
    resp = jsonify(plan_json(plan))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.plan_get", name=plan.name)
    return resp


@bp.get("/plans/<path:name>")
def plan_get(name: str) -> Response:
    return jsonify(plan_json(_saved(name)))


@bp.put("/plans/<path:name>")
def plan_put(name: str) -> Response:
    c = ctx()
    body = _body()
    body.setdefault("name", name)
    plan = _parse(body)
    if slug(plan.name) != slug(name):
        raise invalid(PlanError(BODY, "plan.name", f"must match the name in the URL ({name!r})"))
    with c.write_lock:
        c.plans.save(plan)
    return jsonify(plan_json(plan))


@bp.delete("/plans/<path:name>")
def plan_delete(name: str) -> Response:
    c = ctx()
    with c.write_lock:
        if used := periods_starting(name, c.all_periods()):
            raise RequestError(409, f"the plan {name!r} is started by the bell of {', '.join(map(repr, used))}: "
                                    "change those periods first", key="name")
        try:
            c.plans.delete(name)  # also a plan file that no longer validates
        except PlanError:
            raise RequestError(404, f"no saved plan called {name!r}", key="name") from None
    return Response(status=204)


@bp.get("/periods")
def periods() -> Response:
    c = ctx()
    try:
        saved = c.periods.periods()
    except EdgeError as e:
        raise RequestError(409, f"the saved period schedule is unreadable ({e}); PUT a new one to replace it") \
            from None
    return jsonify({"periods": [period_json(p) for p in saved],
                    "config_periods": [period_json(p) for p in c.config.rotation.periods]})


@bp.put("/periods")
def periods_put() -> Response:
    c = ctx()
    body = _body()
    try:
        periods = parse_periods(body.get("periods"), BODY)
        known = {slug(p.name) for p in c.plans.plans()}
        for i, p in enumerate(periods):
            if slug(p.plan) not in known:
                raise ConfigError(BODY, f"periods[{i}].plan", f"there is no saved plan called {p.plan!r}")
    except ConfigError as e:
        raise invalid(e) from None
    with c.write_lock:
        c.periods.save(periods)
    return jsonify({"periods": [period_json(p) for p in periods],
                    "config_periods": [period_json(p) for p in c.config.rotation.periods]})


# -- regrouping by mastery -------------------------------------------------------------------------------------

def _grouping(fn: Callable[[], Response]) -> Response:
    """A regrouping call: bad parameters are a 422 naming them, a silent mastery service a 503."""
    try:
        return fn()
    except MasteryUnavailable as e:
        raise RequestError(503, str(e), key="mastery") from None
    except GroupingError as e:
        raise RequestError(422, f"cannot group: {e}", reason=str(e)) from None


@bp.get("/groups/proposal")
def groups_proposal() -> Response:
    c = ctx()
    _single_valued(*regroup.QUERY_PARAMETERS)
    return _grouping(lambda: jsonify(regroup.make_proposal(c, regroup.parse_request(request.args, defaults(
        c.config)))[0].to_json()))


@bp.post("/groups")
def groups_apply() -> Response:
    c = ctx()
    body = _body()

    def run() -> Response:
        req = regroup.parse_request({k: v for k, v in body.items() if k != "groups"}, defaults(c.config))
        raw = body.get("groups")
        if not isinstance(raw, list) or not all(isinstance(g, dict) and isinstance(g.get("name"), str)
                                                and isinstance(g.get("students"), list) for g in raw):
            raise GroupingError("groups must be a list of {name, students}")
        groups = [(g["name"], [str(x) for x in g["students"]]) for g in raw]
        plan, gid, final = regroup.apply(c, req, groups)
        return jsonify({"grouping": gid, "plan": plan_json(plan), "proposal": final.to_json()})

    return _grouping(run)


@bp.get("/groups/history")
def groups_history() -> Response:
    c = ctx()
    _single_valued("skill")
    skill = request.args.get("skill") or None  # empty or absent: every skill
    if skill is not None and (reason := name_problem(skill, "skill", SKILL_MAX)):
        raise RequestError(400, reason, key="skill")

    def run() -> Response:
        records, change = regroup.history(c, skill)
        return jsonify({"groupings": records, "change_since_last": [x.to_json() for x in change]})

    return _grouping(run)
