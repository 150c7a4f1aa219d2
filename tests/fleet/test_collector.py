"""The district collector over real HTTP on 127.0.0.1 with a real SQLite store: heartbeats from many simulated
units, authentication by school token, malformed bodies, a unit going silent, bounds, restart."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import hypothesis.strategies as st
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from openapi_spec_validator import validate  # type: ignore[import-untyped]

from edge.config import EdgeConfig
from edge.exc import RequestError
from edge.fleet.collector import make_app
from edge.fleet.heartbeats import parse_heartbeat
from edge.fleet.openapi import spec
from tests.fleet.conftest import TOKENS, FakeTime, OpenApi, heartbeat

LINCOLN, ADAMS = TOKENS["Lincoln Elementary"], TOKENS["Adams Middle"]


class Client:
    def __init__(self, session: ClientSession, base: str, openapi: OpenApi) -> None:
        self.session, self.base, self.openapi = session, base, openapi

    async def call(self, method: str, path: str, *, token: str | None = None, check: bool = True,
                   **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            raw = await resp.read()
            body = json.loads(raw) if raw else None
            if raw:
                assert resp.content_type == "application/json", raw[:200]
            if check:
                self.openapi.check(method, path.split("?")[0], resp.status, body)
            return resp.status, body

    async def beat(self, doc: Any, token: str = LINCOLN) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/heartbeat", token=token, json=doc)

    async def units(self, query: str = "") -> dict[str, Any]:
        status, body = await self.call("GET", "/api/v1/units" + query)
        assert status == 200
        result: dict[str, Any] = body
        return result


@asynccontextmanager
async def collector(config: EdgeConfig, openapi: OpenApi, now: Callable[[], float]) -> AsyncIterator[Client]:
    server = TestServer(make_app(config, now=now), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            yield Client(session, str(server.make_url("")).rstrip("/"), openapi)
    finally:
        await server.close()


def test_openapi_document_is_valid() -> None:
    validate(spec())


async def test_heartbeats_from_many_units_keep_each_units_last_state(fleet_config: EdgeConfig,
                                                                      openapi: OpenApi) -> None:
    clock = FakeTime()
    async with collector(fleet_config, openapi, clock) as c:
        docs = [heartbeat(i, "Lincoln Elementary" if i % 3 else "Adams Middle") for i in range(300)]
        results = await asyncio.gather(*(c.beat(d, LINCOLN if i % 3 else ADAMS) for i, d in enumerate(docs)))
        assert {status for status, _ in results} == {204}
        clock.t += 60
        # a second round: the newest document wins, the count goes up
        again = [heartbeat(i, "Lincoln Elementary", version="0.2.0", backlog=1000 + i) for i in range(1, 300, 3)]
        assert {s for s, _ in await asyncio.gather(*(c.beat(d) for d in again))} == {204}
        body = await c.units()
        assert body["total"] == 300 and len(body["units"]) == 300
        by_id = {u["id"]: u for u in body["units"]}
        u1 = by_id["unit-00001"]
        assert (u1["version"], u1["backlog"], u1["heartbeats"], u1["status"]) == ("0.2.0", 1001, 2, "online")
        assert u1["last_seen_age_s"] == 0 and u1["address"] == "127.0.0.1"
        assert u1["ports"] == {"web": 8000, "cache": 8080, "mastery": 8090}
        u0 = by_id["unit-00000"]
        assert (u0["school"], u0["version"], u0["heartbeats"], u0["last_seen_age_s"]) == ("Adams Middle", "0.1.0",
                                                                                           1, 60)
        status, schools = await c.call("GET", "/api/v1/schools")
        assert status == 200
        assert [(s["school"], s["units"], s["online"]) for s in schools["schools"]] == [
            ("Adams Middle", 100, 100), ("Lincoln Elementary", 200, 200)]
        lincoln = schools["schools"][1]
        assert lincoln["versions"] == {"0.1.0": 100, "0.2.0": 100}
        status, one = await c.call("GET", "/api/v1/units/unit-00004")
        assert status == 200 and one["room"] == "Room 4"


async def test_a_unit_going_silent_is_flagged_offline(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    clock = FakeTime()
    async with collector(fleet_config, openapi, clock) as c:
        for i in range(3):
            assert (await c.beat(heartbeat(i)))[0] == 204
        clock.t += 10 * 60
        for i in (0, 1):  # unit 2 goes silent
            assert (await c.beat(heartbeat(i)))[0] == 204
        clock.t += 6 * 60  # unit 2: 16 minutes silent, over offline_minutes = 15
        units = {u["id"]: u for u in (await c.units())["units"]}
        assert {k: u["status"] for k, u in units.items()} == {
            "unit-00000": "online", "unit-00001": "online", "unit-00002": "offline"}
        assert units["unit-00002"]["last_seen_age_s"] == 16 * 60
        offline = await c.units("?status=offline")
        assert [u["id"] for u in offline["units"]] == ["unit-00002"] and offline["total"] == 3
        by_status = await c.units("?sort=status")
        assert by_status["units"][0]["id"] == "unit-00002"  # offline first
        status, schools = await c.call("GET", "/api/v1/schools")
        assert status == 200
        assert (schools["schools"][0]["online"], schools["schools"][0]["offline"]) == (2, 1)
        # it comes back
        assert (await c.beat(heartbeat(2)))[0] == 204
        assert {u["status"] for u in (await c.units())["units"]} == {"online"}


async def test_tokens_authenticate_the_school(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    async with collector(fleet_config, openapi, FakeTime()) as c:
        status, body = await c.beat(heartbeat(1), token="not-a-token-of-any-school")
        assert status == 401 and body["status"] == 401 and "district token" in body["error"]
        status, body = await c.call("POST", "/api/v1/heartbeat", json=heartbeat(1))  # no header at all
        assert status == 401
        status, body = await c.call("POST", "/api/v1/heartbeat", json=heartbeat(1),
                                    headers={"Authorization": f"Basic {LINCOLN}"})
        assert status == 401
        status, body = await c.beat(heartbeat(1, "Lincoln Elementary"), token=ADAMS)
        assert status == 403 and "'Adams Middle'" in body["error"]
        assert (await c.units())["total"] == 0  # nothing was stored
        # a unit id stays with its school
        assert (await c.beat(heartbeat(1, "Lincoln Elementary")))[0] == 204
        status, body = await c.beat(heartbeat(1, "Adams Middle"), token=ADAMS)
        assert status == 409 and "belongs to school 'Lincoln Elementary'" in body["error"]
        (u,) = (await c.units())["units"]
        assert u["school"] == "Lincoln Elementary"


MALFORMED: list[tuple[Any, str]] = [
    ([], "body: must be a JSON object"),
    ({"version": "1"}, "unit: must be an object"),
    ({"unit": {"room": "r", "school": "Lincoln Elementary"}, "version": "1"}, "unit.id: is required"),
    ({"unit": {"id": "a b", "room": "r", "school": "Lincoln Elementary"}, "version": "1"}, "unit.id: must be"),
    ({"unit": {"id": "u", "room": "r" * 101, "school": "Lincoln Elementary"}, "version": "1"},
     "unit.room: must be at most 100 characters"),
    ({"unit": {"id": "u", "room": 12, "school": "Lincoln Elementary"}, "version": "1"}, "unit.room: must be a string"),
    (heartbeat(1, backlog=-1), "backlog: must be a non-negative"),
    (heartbeat(1, backlog=1.5), "backlog: must be an integer"),
    (heartbeat(1, backlog=True), "backlog: must be an integer"),
    (heartbeat(1, clock_synced="yes"), "clock_synced: must be true, false or null"),
    (heartbeat(1, faults=["x"] * 21), "faults: at most 20"),
    (heartbeat(1, faults="disk"), "faults: must be a list of strings"),
    (heartbeat(1, ports={"web": 70000}), "ports: must map"),
    (heartbeat(1, ports={"ssh": 22}), "ports: must map"),
]


async def test_malformed_bodies_get_a_400_naming_the_field(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    async with collector(fleet_config, openapi, FakeTime()) as c:
        for doc, message in MALFORMED:
            status, body = await c.beat(doc)
            assert (status, body["status"]) == (400, 400), doc
            assert body["error"].startswith(message), (body, message)
        status, body = await c.call("POST", "/api/v1/heartbeat", token=LINCOLN, data=b"{not json",
                                    headers={"Content-Type": "application/json"})
        assert status == 400 and body["error"].startswith("body: invalid JSON")
        status, body = await c.call("POST", "/api/v1/heartbeat", token=LINCOLN, data=b"\xff\xfe",
                                    headers={"Content-Type": "application/json"})
        assert status == 400
        # a lone surrogate escape cannot be stored or shown (it was a 500 from SQLite's encoder)
        lone = json.dumps(heartbeat(1, faults=["disk \ud800"])).encode()
        status, body = await c.call("POST", "/api/v1/heartbeat", token=LINCOLN, data=lone,
                                    headers={"Content-Type": "application/json"})
        assert status == 400 and "lone surrogate" in body["error"]
        big = heartbeat(1, pin_factory="x" * 20_000)
        status, body = await c.beat(big)
        assert status == 413 and body == {"error": "request body is larger than 16384 bytes", "status": 413}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
            for _ in range(40):
                yield b" " * 1024

        status, body = await c.call("POST", "/api/v1/heartbeat", token=LINCOLN, data=chunks())
        assert status == 413
        assert (await c.units())["total"] == 0
        # errors elsewhere are JSON too, never a traceback
        status, body = await c.call("GET", "/nowhere", check=False)
        assert (status, body["status"]) == (404, 404)
        status, body = await c.call("DELETE", "/api/v1/units", check=False)
        assert (status, body["status"]) == (405, 405)
        status, body = await c.call("GET", "/api/v1/units?sort=password")
        assert status == 400 and body["error"].startswith("sort: must be one of")
        status, body = await c.call("GET", "/api/v1/units/unit-99999")
        assert status == 404


async def test_the_store_is_bounded_in_units(make_config: Any, openapi: OpenApi) -> None:
    cfg = make_config(fleet={"tokens": TOKENS, "max_units": 3})
    async with collector(cfg, openapi, FakeTime()) as c:
        for i in range(3):
            assert (await c.beat(heartbeat(i)))[0] == 204
        status, body = await c.beat(heartbeat(3))
        assert status == 507 and "at most 3 units" in body["error"]
        assert (await c.beat(heartbeat(0, version="0.2.0")))[0] == 204  # known units keep reporting
        assert (await c.units())["total"] == 3


async def test_state_survives_a_restart_and_the_file_is_wal_full(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    clock = FakeTime()
    async with collector(fleet_config, openapi, clock) as c:
        assert (await c.beat(heartbeat(7, faults=["clock: not synchronised (NTP)"])))[0] == 204
    db = fleet_config.state_dir / "fleet" / "fleet.sqlite3"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    clock.t += 3600
    async with collector(fleet_config, openapi, clock) as c:
        (u,) = (await c.units())["units"]
        assert (u["id"], u["status"], u["faults"]) == ("unit-00007", "offline", ["clock: not synchronised (NTP)"])


async def test_filters_and_sorting_of_the_api(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    async with collector(fleet_config, openapi, FakeTime()) as c:
        await c.beat(heartbeat(1, disk_free_bytes=5))
        await c.beat(heartbeat(2, disk_free_bytes=None, version="0.3.0"))
        await c.beat(heartbeat(3, disk_free_bytes=9, faults=["disk: only 1% free on the state file system"]))
        await c.beat(heartbeat(4, "Adams Middle", disk_free_bytes=1), token=ADAMS)
        ids = lambda body: [u["id"][-1] for u in body["units"]]  # noqa: E731
        assert ids(await c.units("?sort=disk_free")) == ["4", "1", "3", "2"]  # unknown last
        assert ids(await c.units("?sort=disk_free&order=desc"))[0] == "2"
        assert ids(await c.units("?school=Adams%20Middle")) == ["4"]
        assert ids(await c.units("?status=faulty")) == ["3"]
        assert ids(await c.units("?q=0.3.0")) == ["2"]
        assert ids(await c.units("?q=ROOM%201")) == ["1"]


def test_fleet_config_is_validated(make_config: Any) -> None:
    import pytest

    from edge.exc import ConfigError

    with pytest.raises(ConfigError, match=r"fleet.tokens: the token of 'Lincoln' must be at least 16 characters"):
        make_config(fleet={"tokens": {"Lincoln": "short"}})
    with pytest.raises(ConfigError, match="every school needs its own token"):
        make_config(fleet={"tokens": {"A": "x" * 16, "B": "x" * 16}})
    with pytest.raises(ConfigError, match=r"fleet.offline_minutes: must be greater than 0"):
        make_config(fleet={"offline_minutes": 0})
    with pytest.raises(ConfigError, match=r"fleet.colour: unknown key"):
        make_config(fleet={"colour": "red"})
    with pytest.raises(ConfigError, match=r"unit.id: must be at most 64"):
        make_config(unit={"id": "a b"})
    cfg = make_config(fleet={"tokens": TOKENS}, district={"heartbeat_token": LINCOLN}, unit={"advertise": False})
    assert cfg.fleet.port == 8470 and cfg.fleet.tokens == TOKENS and not cfg.unit.advertise


def test_parse_heartbeat_accepts_what_the_unit_sends(make_config: Any) -> None:
    from edge.sync.heartbeat import build_heartbeat

    cfg = make_config(unit={"id": "unit-1", "room": "Room 12", "school": "Lincoln Elementary"})
    doc = json.loads(json.dumps(build_heartbeat(cfg)))
    parsed = parse_heartbeat(doc)
    assert parsed["unit"]["id"] == "unit-1" and parsed["ports"] == doc["ports"]
    assert parsed["faults"] == doc["faults"] and parsed["disk_free_bytes"] == doc["disk_free_bytes"]


def test_whole_numbers_written_with_a_point_are_integers() -> None:
    """JSON (and JSON Schema, which the document uses) do not tell 27 from 27.0: the collector takes both."""
    parsed = parse_heartbeat(heartbeat(1, backlog=27.0, ports={"web": 8000.0, "cache": 8080, "mastery": 8090}))
    assert (parsed["backlog"], parsed["ports"]["web"]) == (27, 8000)
    assert type(parsed["backlog"]) is int and type(parsed["ports"]["web"]) is int
    for bad in ({"backlog": 27.5}, {"ports": {"web": 80.5}}, {"backlog": True}):
        with pytest.raises(RequestError):
            parse_heartbeat(heartbeat(1, **bad))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=12)
KEYS = ["unit", "version", "backlog", "faults", "ports", "clock_synced", "disk_free_bytes", "oldest_unsent_age_s",
        "sent_at", "kernel"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(body=JSON, key=st.sampled_from(KEYS), value=JSON, sub=st.sampled_from(["id", "room", "school", "hostname"]))
def test_parse_heartbeat_only_ever_refuses_with_a_400(body: Any, key: str, value: Any, sub: str) -> None:
    for candidate in (body, {**heartbeat(1), key: value}, _with_unit(sub, value)):
        try:
            parsed = parse_heartbeat(candidate)
        except RequestError as e:
            assert e.status == 400 and e.key
            continue
        json.dumps(parsed, allow_nan=False)  # what is stored is plain JSON


def _with_unit(key: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(heartbeat(1))
    doc["unit"][key] = value
    return doc


async def test_metrics_and_healthz_of_the_collector(fleet_config: EdgeConfig, openapi: OpenApi) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    clock = FakeTime()
    async with collector(fleet_config, openapi, clock) as c:
        await c.beat(heartbeat(1, backlog=12, oldest_unsent_age_s=300.0))
        await c.beat(heartbeat(2, faults=["clock: not synchronised (NTP)"]))
        await c.beat(heartbeat(3, "Adams Middle"), token=ADAMS)
        await c.beat(heartbeat(4), token="wrong-token-0123456789")
        clock.t += 20 * 60
        await c.beat(heartbeat(1, backlog=12, oldest_unsent_age_s=300.0))
        async with c.session.get(c.base + "/metrics") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=")
            text = await resp.text()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        lincoln = (("school", "Lincoln Elementary"),)
        assert samples[("classroom_edge_fleet_units", (*lincoln, ("status", "online")))] == 1
        assert samples[("classroom_edge_fleet_units", (*lincoln, ("status", "offline")))] == 1
        assert samples[("classroom_edge_fleet_units", (("school", "Adams Middle"), ("status", "offline")))] == 1
        assert samples[("classroom_edge_fleet_units_faulty", lincoln)] == 1
        unit1 = (("room", "Room 1"), ("school", "Lincoln Elementary"), ("unit", "unit-00001"))
        assert samples[("classroom_edge_fleet_unit_backlog_statements", unit1)] == 12
        assert samples[("classroom_edge_fleet_unit_oldest_unsent_age_seconds", unit1)] == 300
        unit2 = (("room", "Room 2"), ("school", "Lincoln Elementary"), ("unit", "unit-00002"))
        assert samples[("classroom_edge_fleet_unit_last_seen_age_seconds", unit2)] == 1200
        assert samples[("classroom_edge_fleet_heartbeats_total", ())] == 4
        assert samples[("classroom_edge_fleet_heartbeats_refused_total", ())] == 1
        async with c.session.get(c.base + "/healthz") as resp:
            assert resp.status == 200
            health = await resp.json()
        assert (health["status"], health["units"]) == ("ok", 3)


async def test_a_real_unit_heartbeat_reaches_the_collector(fleet_config: EdgeConfig, openapi: OpenApi,
                                                           make_config: Any) -> None:
    from edge.sync.heartbeat import build_heartbeat, send_heartbeat

    async with collector(fleet_config, openapi, FakeTime()) as c:
        unit_cfg = make_config(unit={"id": "unit-real", "room": "Room 12", "school": "Lincoln Elementary"},
                               district={"heartbeat_url": c.base + "/api/v1/heartbeat", "heartbeat_token": LINCOLN})
        assert await send_heartbeat(unit_cfg, build_heartbeat(unit_cfg)) == 204
        wrong = make_config(unit={"id": "unit-real", "room": "Room 12", "school": "Adams Middle"},
                            district={"heartbeat_url": c.base + "/api/v1/heartbeat", "heartbeat_token": LINCOLN})
        assert await send_heartbeat(wrong, build_heartbeat(wrong)) == 403
        (u,) = (await c.units())["units"]
        assert (u["id"], u["room"], u["school"], u["backlog"]) == ("unit-real", "Room 12", "Lincoln Elementary", 0)
        assert u["ports"] == {"web": 8000, "cache": 8080, "mastery": 8090} and u["disk_free_bytes"] > 0
