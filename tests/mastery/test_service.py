"""The mastery service on a real aiohttp server (127.0.0.1) with a real SQLite store under tmp_path."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.config import EdgeConfig, parse_config
from edge.mastery.app import make_app
from edge.mastery.replay import Event, replay
from edge.params import ParamSet, SkillParams
from edge.xapi import OBJECTIVE_TYPE, SKILL_EXTENSION

KEY = "s3cret"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = {"Authorization": basic("class", KEY)}
XAPI = {**AUTH, "X-Experience-API-Version": "1.0.3"}
DEFAULT = SkillParams(prior=0.3, learn=0.1, guess=0.2, slip=0.1, forget=0.0)


def make_config(tmp_path: Path, key: str = KEY) -> EdgeConfig:
    return parse_config({
        "unit": {"state_dir": str(tmp_path)},
        "mastery": {"class_key": key, "bands": [0.6, 0.95],
                    "params": {"default": {"prior": 0.3, "learn": 0.1, "guess": 0.2, "slip": 0.1}}},
    })


Body = Callable[[TestClient[Any, Any]], Awaitable[None]]


def serve(config: EdgeConfig, body: Body, activity_skills: dict[str, str] | None = None) -> None:
    async def main() -> None:
        server = TestServer(make_app(config, activity_skills), host="127.0.0.1")
        async with TestClient(server) as client:
            await body(client)

    asyncio.run(main())


def statement(student: str, skill: str, success: bool, ts: str, sid: str | None = None,
              verb: str = "answered") -> dict[str, Any]:
    st: dict[str, Any] = {
        "actor": {"objectType": "Agent", "account": {"homePage": "https://school.example", "name": student}},
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
        "object": {"id": "https://lessons.example/fractions/q1"},
        "result": {"success": success},
        "context": {"extensions": {SKILL_EXTENSION: skill}},
        "timestamp": ts,
    }
    if sid is not None:
        st["id"] = sid
    return st


def test_auth_version_and_missing_key(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/xapi/statements", json=[], headers={"X-Experience-API-Version": "1.0.3"})
        assert r.status == 401 and "WWW-Authenticate" in r.headers
        r = await c.post("/xapi/statements", json=[], headers={**XAPI, "Authorization": basic("class", "nope")})
        assert r.status == 401
        r = await c.post("/xapi/statements", json=statement("a", "k", True, "2024-05-01T10:00:00Z"), headers=AUTH)
        assert r.status == 400 and (await r.json())["key"] == "X-Experience-API-Version"
        r = await c.get("/api/v1/mastery?skill=k", headers=AUTH)
        assert r.status == 200

    serve(make_config(tmp_path), body)

    async def no_key(c: TestClient[Any, Any]) -> None:
        r = await c.post("/api/v1/evidence", json=[], headers={"Authorization": basic("class", "")})
        assert r.status == 503 and "mastery.class_key" in (await r.json())["error"]

    serve(make_config(tmp_path, key=""), no_key)


def test_statements_post_put_get_dedupe_conflict(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())

    async def body(c: TestClient[Any, Any]) -> None:
        one = statement("stu-1", "fractions", True, "2024-05-01T10:00:00Z", sid)
        r = await c.post("/xapi/statements", json=[one, statement("stu-1", "fractions", False,
                                                                   "2024-05-01T10:01:00Z")], headers=XAPI)
        assert r.status == 200, await r.text()
        ids = await r.json()
        assert ids[0] == sid and len(ids) == 2 and uuid.UUID(ids[1])
        assert r.headers["X-Experience-API-Version"] == "1.0.3"
        # same content again (key order changed): a no-op success
        again = dict(reversed(list(one.items())))
        r = await c.post("/xapi/statements", json=again, headers=XAPI)
        assert r.status == 200 and await r.json() == [sid]
        # different content under the same id: 409, and nothing of that request is stored
        other = statement("stu-1", "fractions", False, "2024-05-01T10:00:00Z", sid)
        fresh = str(uuid.uuid4())
        r = await c.post("/xapi/statements", headers=XAPI,
                         json=[statement("stu-2", "fractions", True, "2024-05-01T10:00:00Z", fresh), other])
        assert r.status == 409
        r = await c.get(f"/xapi/statements?statementId={fresh}", headers=XAPI)
        assert r.status == 404
        # PUT
        pid = str(uuid.uuid4())
        r = await c.put(f"/xapi/statements?statementId={pid}", headers=XAPI,
                        json=statement("stu-2", "decimals", True, "2024-05-01T11:00:00Z"))
        assert r.status == 204
        r = await c.put(f"/xapi/statements?statementId={pid}", headers=XAPI,
                        json=statement("stu-2", "decimals", False, "2024-05-01T11:00:00Z"))
        assert r.status == 409
        r = await c.get(f"/xapi/statements?statementId={pid}", headers=XAPI)
        got = await r.json()
        assert r.status == 200 and got["id"] == pid and got["result"] == {"success": True}
        assert got["version"] == "1.0.3" and "stored" in got and got["authority"]["account"]["name"] == "class"

        r = await c.get("/api/v1/mastery/students/stu-1", headers=AUTH)
        skills = (await r.json())["skills"]
        assert [(s["skill"], s["responses"]) for s in skills] == [("fractions", 2)]

    serve(make_config(tmp_path), body)
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM statements").fetchone() == (3,)
    # each stored statement was queued for the district in the same transaction, as the LRS should get it
    queued = {i: json.loads(b) for i, b in db.execute("SELECT id, body FROM sync_outbox WHERE state = 0")}
    queued = {i: b for i, b in queued.items() if not b["verb"]["id"].endswith("/estimated-mastery")}
    assert set(queued) == {r[0] for r in db.execute("SELECT id FROM statements")}
    assert all("stored" not in b and "authority" not in b and b["timestamp"] for b in queued.values())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, "object": {"id": "urn:x"}}, "statement.actor"),
        ({**statement("a", "k", True, "2024-05-01T10:00:00Z"), "verb": {"id": "answered"}}, "statement.verb.id"),
        ({**statement("a", "k", True, "2024-05-01T10:00:00Z"), "id": "not-a-uuid"}, "statement.id"),
        ({**statement("a", "k", True, "2024-05-01T10:00:00Z"), "result": {"success": "yes"}},
         "statement.result.success"),
        ({**statement("a", "k", True, "2024-05-01T10:00:00Z"), "timestamp": "noon"}, "statement.timestamp"),
        ([statement("a", "k", True, "2024-05-01T10:00:00Z"), {"actor": 3}], "statements[1].actor"),
        ({**statement("a", "k", True, "2024-05-01T10:00:00Z"), "colour": "red"}, "statement.colour"),
    ],
)
def test_invalid_statement_names_the_field(tmp_path: Path, payload: Any, field: str) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/xapi/statements", json=payload, headers=XAPI)
        assert r.status == 400
        assert (await r.json())["key"] == field

    serve(make_config(tmp_path), body)


def test_too_large(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        big = [statement("a", "k", True, "2024-05-01T10:00:00Z")] * 1001
        r = await c.post("/xapi/statements", json=big, headers=XAPI)
        assert r.status == 413
        r = await c.post("/api/v1/evidence", data=b"[" + b" " * (2 * 1024 * 1024) + b"]", headers=AUTH)
        assert r.status == 413 and "larger than" in (await r.json())["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: aiohttp's own limit applies
            yield b"["
            for _ in range(40):
                yield b" " * 65536
            yield b"]"

        r = await c.post("/api/v1/evidence", data=chunks(), headers=AUTH)
        assert r.status == 413 and "larger than" in (await r.json())["error"]

    serve(make_config(tmp_path), body)


def test_evidence_skill_sources_and_non_evidence_kept(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        mapped = statement("s1", "ignored", True, "2024-05-01T10:00:00Z")
        del mapped["context"]  # skill from the manifest's activity mapping
        objective = statement("s1", "x", False, "2024-05-01T10:00:01Z")
        objective["object"] = {"id": "https://lessons.example/decimals/q7"}
        objective["context"] = {"contextActivities": {"category": [
            {"id": "https://district.example/skills/decimals", "definition": {"type": OBJECTIVE_TYPE}}]}}
        viewed = statement("s1", "fractions", True, "2024-05-01T10:00:02Z", verb="experienced")
        r = await c.post("/xapi/statements", json=[mapped, objective, viewed], headers=XAPI)
        assert r.status == 200
        r = await c.get("/api/v1/mastery/students/s1", headers=AUTH)
        got = {s["skill"]: s["responses"] for s in (await r.json())["skills"]}
        assert got == {"fractions": 1, "https://district.example/skills/decimals": 1}
        r = await c.get("/api/v1/mastery/students/nobody", headers=AUTH)
        assert r.status == 404

    serve(make_config(tmp_path), body, {"https://lessons.example/fractions/q1": "fractions"})
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    assert db.execute("SELECT count(*) FROM statements").fetchone()[0] == 3  # all kept for sync
    assert db.execute("SELECT count(*) FROM evidence").fetchone()[0] == 2


def test_compact_evidence_late_arrivals_equal_sorted_replay(tmp_path: Path) -> None:
    """Out-of-order batches (and a restart) give exactly the state of the sorted replay."""
    import random

    rnd = random.Random(5)
    events: list[dict[str, Any]] = [
        {"id": f"e{i:03d}", "student": f"s{rnd.randrange(4)}", "skill": f"k{rnd.randrange(3)}",
         "correct": rnd.random() < 0.6, "timestamp": 1714557600 + rnd.randrange(5000)}
        for i in range(300)
    ]
    shuffled = events[:]
    rnd.shuffle(shuffled)
    expected: dict[tuple[str, str], tuple[float, int]] = {}
    for row in replay([Event(e["id"], e["student"], e["skill"], e["correct"], Decimal(e["timestamp"]))
                       for e in events], ParamSet(default=DEFAULT)):
        n = expected.get((row.student, row.skill), (0.0, 0))[1]
        expected[(row.student, row.skill)] = (row.p_known_after, n + 1)

    async def check(c: TestClient[Any, Any]) -> None:
        for skill in ("k0", "k1", "k2"):
            r = await c.get(f"/api/v1/mastery?skill={skill}", headers=AUTH)
            doc = await r.json()
            for s in doc["students"]:
                p, n = expected[(s["student"], skill)]
                assert s["responses"] == n
                assert s["p_known"] == pytest.approx(p, abs=1e-12)
                assert s["band"] == ("needs_help" if p < 0.6 else "practising" if p < 0.95 else "mastered")

    async def body(c: TestClient[Any, Any]) -> None:
        for i in range(0, 300, 25):
            r = await c.post("/api/v1/evidence", json=shuffled[i:i + 25], headers=AUTH)
            assert r.status == 200, await r.text()
        r = await c.post("/api/v1/evidence", json=shuffled[:10], headers=AUTH)  # a retried upload: no-op
        assert r.status == 200
        r = await c.post("/api/v1/evidence", json=[{**shuffled[0], "correct": not shuffled[0]["correct"]}],
                         headers=AUTH)
        assert r.status == 409
        r = await c.post("/api/v1/evidence", json=[{**shuffled[0], "correct": "maybe"}], headers=AUTH)
        assert r.status == 400 and (await r.json())["key"] == "[0].correct"
        await check(c)

    config = make_config(tmp_path)
    serve(config, body)
    serve(config, check)  # after a restart: rebuilt from the store


def test_concurrent_posts_all_durable(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        async def client(n: int) -> None:
            for b in range(3):
                batch = [statement(f"s{n}", "k", (i + b) % 2 == 0, f"2024-05-01T10:{b:02d}:{i:02d}Z")
                         for i in range(20)]
                r = await c.post("/xapi/statements", json=batch, headers=XAPI)
                assert r.status == 200

        await asyncio.gather(*(client(n) for n in range(12)))
        doc = await (await c.get("/api/v1/mastery?skill=k", headers=AUTH)).json()
        assert sorted(s["responses"] for s in doc["students"]) == [60] * 12

    serve(make_config(tmp_path), body)
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    assert db.execute("SELECT count(*) FROM statements").fetchone()[0] == 12 * 60


def test_start_mastery_binds_and_stops(tmp_path: Path) -> None:
    from edge.mastery.app import start_mastery

    config = parse_config({"unit": {"state_dir": str(tmp_path)},
                           "mastery": {"host": "127.0.0.1", "port": 0, "class_key": KEY}})

    async def main() -> None:
        runner = await start_mastery(config)
        try:
            host, port = runner.addresses[0][:2]
            item = {"id": "a", "student": "s", "skill": "k", "correct": 1, "timestamp": 1}
            async with aiohttp.ClientSession() as session, session.post(
                    f"http://{host}:{port}/api/v1/evidence", headers=AUTH, json=[item]) as r:
                assert r.status == 200
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert (tmp_path / "mastery" / "mastery.sqlite3").exists()


def test_district_params_file_overrides_config(tmp_path: Path) -> None:
    (tmp_path / "mastery").mkdir()
    (tmp_path / "mastery" / "params.toml").write_text('[skills."k"]\nprior = 0.9\n')

    async def body(c: TestClient[Any, Any]) -> None:
        await c.post("/api/v1/evidence", headers=AUTH, json=[
            {"id": "a", "student": "s", "skill": "k", "correct": True, "timestamp": "2024-05-01T10:00:00Z"},
            {"id": "b", "student": "s", "skill": "other", "correct": True, "timestamp": "2024-05-01T10:00:00Z"}])
        doc = await (await c.get("/api/v1/mastery?skill=never-seen", headers=AUTH)).json()
        assert doc["students"] == []  # s answered other skills only (issue 11: reports list evidence or roster)
        skills = {s["skill"]: s["p_known"] for s in
                  (await (await c.get("/api/v1/mastery/students/s", headers=AUTH)).json())["skills"]}
        k = SkillParams(prior=0.9, learn=0.1, guess=0.2, slip=0.1)  # district prior, config's other keys
        post = k.prior * 0.9 / (k.prior * 0.9 + (1 - k.prior) * 0.2)
        assert skills["k"] == pytest.approx(post + (1 - post) * 0.1, abs=1e-12)
        post = 0.3 * 0.9 / (0.3 * 0.9 + 0.7 * 0.2)
        assert skills["other"] == pytest.approx(post + (1 - post) * 0.1, abs=1e-12)

    serve(make_config(tmp_path), body)


def test_skill_from_the_lesson_manifest_in_config(tmp_path: Path) -> None:
    import json

    manifest = tmp_path / "fractions.json"
    manifest.write_text(json.dumps({"origin": "district", "paths": [
        "fractions/index.html",
        {"path": "fractions/q1.html", "activity": "https://lessons.example/fractions/q1", "skill": "fractions"},
    ]}))
    config = parse_config({
        "unit": {"state_dir": str(tmp_path)},
        "cache": {"origins": {"district": "https://lessons.example"}},
        "mastery": {"class_key": KEY, "manifests": [str(manifest)]},
    }, "edge.toml")

    async def body(c: TestClient[Any, Any]) -> None:
        mapped = statement("s1", "ignored", True, "2024-05-01T10:00:00Z")
        del mapped["context"]
        assert (await c.post("/xapi/statements", json=[mapped], headers=XAPI)).status == 200
        r = await c.get("/api/v1/mastery/students/s1", headers=AUTH)
        assert [s["skill"] for s in (await r.json())["skills"]] == ["fractions"]

    serve(config, body)


def test_a_bad_lesson_manifest_is_a_config_error(tmp_path: Path) -> None:
    from edge.exc import ConfigError

    manifest = tmp_path / "m.json"
    manifest.write_text('{"origin": "district", "paths": [{"path": "q.html", "activity": "https://a/q"}]}')
    config = parse_config({"unit": {"state_dir": str(tmp_path)},
                           "cache": {"origins": {"district": "https://lessons.example"}},
                           "mastery": {"class_key": KEY, "manifests": [str(manifest)]}}, "edge.toml")
    with pytest.raises(ConfigError, match=r"edge.toml: mastery.manifests\[0\]: .*activity and skill go together"):
        make_app(config)


def test_compact_evidence_is_queued_for_the_district_as_statements(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        items = [{"id": "ev-1", "student": "s9", "skill": "fractions", "correct": True, "timestamp": 1714557600},
                 {"id": "ev-2", "student": "s9", "skill": "fractions", "correct": False, "timestamp": 1714557660}]
        assert (await c.post("/api/v1/evidence", json=items, headers=AUTH)).status == 200
        assert (await c.post("/api/v1/evidence", json=items, headers=AUTH)).status == 200  # a re-send: no-op

    serve(make_config(tmp_path), body)
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    queued = [json.loads(b) for (b,) in db.execute("SELECT body FROM sync_outbox ORDER BY seq")]
    assert len(queued) == 3
    assert queued[2]["verb"]["id"].endswith("/estimated-mastery")  # the snapshot taken when it stopped
    first = queued[0]
    assert first["actor"]["account"] == {"homePage": "https://classroom-edge.invalid/students", "name": "s9"}
    assert first["result"] == {"success": True} and first["verb"]["id"].endswith("/answered")
    assert first["timestamp"] == "2024-05-01T10:00:00.000000Z" and uuid.UUID(first["id"]).version == 5


def test_snapshots_queue_only_changed_cells_and_sync_status(tmp_path: Path) -> None:
    from edge.mastery.service import MASTERY

    async def body(c: TestClient[Any, Any]) -> None:
        m = c.server.app[MASTERY]
        ev = [{"id": "e1", "student": "s1", "skill": "fractions", "correct": True, "timestamp": 1714557600}]
        assert (await c.post("/api/v1/evidence", json=ev, headers=AUTH)).status == 200
        assert await m.snapshot_once() == 1
        assert await m.snapshot_once() == 0  # nothing changed since
        ev = [{"id": "e2", "student": "s1", "skill": "fractions", "correct": False, "timestamp": 1714557700},
              {"id": "e3", "student": "s2", "skill": "decimals", "correct": True, "timestamp": 1714557700}]
        assert (await c.post("/api/v1/evidence", json=ev, headers=AUTH)).status == 200
        assert await m.snapshot_once() == 2
        r = await c.get("/api/v1/sync", headers=AUTH)
        status = await r.json()
        assert r.status == 200 and status["enabled"] is False and status["backlog"] == 3 + 3
        r = await c.post("/api/v1/sync", headers=AUTH)
        assert r.status == 409 and "district.lrs_url" in (await r.json())["error"]
        assert (await c.get("/api/v1/sync")).status == 401

    serve(make_config(tmp_path), body)
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    snaps = [json.loads(b) for (b,) in db.execute("SELECT body FROM sync_outbox ORDER BY seq")
             if json.loads(b)["verb"]["id"].endswith("/estimated-mastery")]
    assert len(snaps) == 3  # nothing changed at shutdown: no fourth
    assert {s["actor"]["account"]["name"] for s in snaps} == {"s1", "s2"}


def test_stored_and_queued_bodies_of_a_statement_without_timestamp(tmp_path: Path) -> None:
    """One encoding per statement: the stored body and the district's copy carry what this LRS adds."""
    sid = str(uuid.uuid4())
    sent = statement("stu-1", "fractions", True, "unused", sid)
    del sent["timestamp"]
    sent["result"] = {"success": True, "response": "½ — un demi", "score": {"scaled": 1e-07}}
    got: dict[str, Any] = {}

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/xapi/statements", json=[sent], headers=XAPI)
        assert r.status == 200 and await r.json() == [sid]
        r = await c.post("/xapi/statements", json=sent, headers=XAPI)  # a re-send (no timestamp): a no-op
        assert r.status == 200
        got.update(await (await c.get(f"/xapi/statements?statementId={sid}", headers=XAPI)).json())

    serve(make_config(tmp_path), body)
    assert {k: v for k, v in got.items() if k not in ("timestamp", "stored", "authority", "version")} == sent
    assert got["timestamp"] == got["stored"] and got["version"] == "1.0.3"
    assert got["authority"] == {"objectType": "Agent", "account": {"homePage": "urn:classroom-edge", "name": "class"}}
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    assert db.execute("SELECT count(*) FROM statements").fetchone() == (1,)
    (queued,) = db.execute("SELECT body FROM sync_outbox WHERE id = ?", (sid,)).fetchone()
    assert json.loads(queued) == {k: v for k, v in got.items() if k not in ("stored", "authority")}


def test_a_lone_surrogate_is_a_400_not_a_500(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st = statement("s1", "fractions", True, "2024-05-01T10:00:00Z")
        raw = json.dumps(st).replace('"s1"', '"s1\\ud800"')
        r = await c.post("/xapi/statements", data=raw, headers={**XAPI, "Content-Type": "application/json"})
        assert r.status == 400 and (await r.json())["key"] == "body"
        ok = json.dumps(st).replace('"s1"', '"s1\\ud83d\\ude00"')  # a proper surrogate pair is fine
        r = await c.post("/xapi/statements", data=ok, headers={**XAPI, "Content-Type": "application/json"})
        assert r.status == 200, await r.text()

    serve(make_config(tmp_path), body)
