"""/xapi/about (no credential needed), /xapi/activities (an activity's definition as this LRS knows it) and
/xapi/agents (the Person object of an agent)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from edge.exc import RequestError, StatementError
from edge.mastery.middleware import resource
from edge.mastery.service import MASTERY
from edge.serving.aio import json_response
from edge.xapi.agents import IFIS, parse_agent_param
from edge.xapi.formats import is_iri

VERSIONS = ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]


def _only(request: web.Request, name: str) -> str:
    extra = sorted(set(request.query) - {name})
    if extra:
        raise RequestError(400, f"unknown parameter {extra[0]} (known: {name})", key=extra[0])
    if len(request.query.getall(name, [])) != 1:
        raise RequestError(400, f"{name} is required (once)", key=name)
    return request.query[name]


async def about(request: web.Request) -> web.StreamResponse:
    return json_response({"version": VERSIONS, "extensions": {
        "https://w3id.org/xapi/classroom-edge/extensions/launch": ["tincan", "cmi5"]}})


async def activity(request: web.Request) -> web.StreamResponse:
    """The Activity with the latest definition a statement gave it (just its id when none did)."""
    m = request.app[MASTERY]
    activity_id = _only(request, "activityId")
    if not is_iri(activity_id):
        raise RequestError(400, "activityId must be an IRI", key="activityId")
    definition = await m.reads.run(lambda db: m.reads.statements.activity(activity_id))
    body: dict[str, Any] = {"objectType": "Activity", "id": activity_id}
    if definition is not None:
        body["definition"] = json.loads(definition)
    return json_response(body)


async def person(request: web.Request) -> web.StreamResponse:
    """The Person object of an agent: this LRS links no identities, so it is the agent's own IFI and name."""
    try:
        agent = parse_agent_param(_only(request, "agent"), "agent")
    except StatementError as e:
        raise RequestError(400, e.message, key="agent") from None
    if agent.get("objectType") == "Group":
        raise RequestError(400, "agent must be an Agent (Person objects describe people)", key="agent")
    body: dict[str, Any] = {"objectType": "Person"}
    if "name" in agent:
        body["name"] = [agent["name"]]
    for ifi in IFIS:
        if ifi in agent:
            body[ifi] = [agent[ifi]]
    return json_response(body)


def add_routes(app: web.Application) -> None:
    resource(app, "/xapi/about", {"GET": about})
    resource(app, "/xapi/activities", {"GET": activity})
    resource(app, "/xapi/agents", {"GET": person})
