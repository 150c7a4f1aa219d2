"""The mastery service as an xAPI 1.0.3 LRS for browser content: CORS, about, versions, the alternate
request syntax, documents with ETags, voiding, queries with `more`, attachments (real aiohttp server on
127.0.0.1, real SQLite)."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from edge.config import parse_config
from edge.xapi import multipart
from tests.mastery.test_service import AUTH, KEY, XAPI, make_config, serve, statement

ORIGIN = "http://127.0.0.1:8080"  # the lesson cache on this unit (cache.port 8080, same host)
AGENT = {"objectType": "Agent", "account": {"homePage": "https://school.example", "name": "stu-1"}}


def test_a_preflight_is_answered_before_auth_for_the_lesson_cache_origin(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type,x-experience-api-version"}
        r = await c.options("/xapi/statements", headers=pre)
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "X-Experience-API-Version" in r.headers["Access-Control-Allow-Headers"]
        assert "If-Match" in r.headers["Access-Control-Allow-Headers"]
        assert "PUT" in r.headers["Access-Control-Allow-Methods"]
        r = await c.options("/xapi/statements", headers={**pre, "Origin": "http://evil.example"})
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        r = await c.options("/xapi/activities/state", headers={**pre, "Origin": "http://127.0.0.1:9999"})
        assert r.status == 403  # same host, not the cache's port
        # the actual request: credentials checked, CORS headers on success and on errors alike
        r = await c.post("/xapi/statements", json=statement("s", "k", True, "2024-05-01T10:00:00Z"),
                         headers={**XAPI, "Origin": ORIGIN})
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "X-Experience-API-Consistent-Through" in r.headers["Access-Control-Expose-Headers"]
        r = await c.get("/xapi/statements", headers={"X-Experience-API-Version": "1.0.3", "Origin": ORIGIN})
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
        r = await c.get("/api/v1/mastery?skill=k", headers={**AUTH, "Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in r.headers  # the teachers' API is not for lesson pages

    serve(make_config(tmp_path), body)


def test_configured_origins(tmp_path: Path) -> None:
    config = parse_config({"unit": {"state_dir": str(tmp_path)},
                           "mastery": {"class_key": KEY, "cors_origins": ["https://lessons.example.org"]}})

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.options("/xapi/about", headers={"Origin": "https://lessons.example.org",
                                                    "Access-Control-Request-Method": "GET",
                                                    "Access-Control-Request-Private-Network": "true"})
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://lessons.example.org"
        assert r.headers["Access-Control-Allow-Private-Network"] == "true"

    serve(config, body)


def test_about_versions_and_2_0_refused(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/xapi/about")  # no credentials, no version header
        assert r.status == 200 and "1.0.3" in (await r.json())["version"]
        for version in ("1.0.1", "1.0.2", "1.0"):
            r = await c.get("/xapi/statements?limit=1", headers={**XAPI, "X-Experience-API-Version": version})
            assert r.status == 200 and r.headers["X-Experience-API-Version"] == "1.0.3"
        r = await c.get("/xapi/statements", headers={**XAPI, "X-Experience-API-Version": "2.0.0"})
        doc = await r.json()
        assert r.status == 400 and doc["key"] == "X-Experience-API-Version" and "1.0.3" in doc["error"]

    serve(make_config(tmp_path), body)


def test_the_alternate_request_syntax(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    st = statement("s", "k", True, "2024-05-01T10:00:00Z")

    async def body(c: TestClient[Any, Any]) -> None:
        form = {"statementId": sid, "content": json.dumps(st), "Authorization": AUTH["Authorization"],
                "X-Experience-API-Version": "1.0.2", "Content-Type": "application/json"}
        r = await c.post("/xapi/statements?method=PUT", data=urlencode(form),
                         headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": ORIGIN})
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == ORIGIN  # no preflight needed
        form = {"statementId": sid, "Authorization": AUTH["Authorization"], "X-Experience-API-Version": "1.0.3"}
        r = await c.post("/xapi/statements?method=GET", data=urlencode(form),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 200 and (await r.json())["id"] == sid
        r = await c.post("/xapi/statements?method=PUT&statementId=" + sid, data=urlencode(form),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 400  # parameters belong in the form
        r = await c.post("/xapi/statements?method=PUT", data=urlencode({**form, "X-Experience-API-Version": "0.9"}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 400
        r = await c.post("/xapi/statements?method=GET", data=urlencode({"statementId": sid}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 401  # the credential is in the form or nowhere

    serve(make_config(tmp_path), body)


def test_state_etags_merge_and_profile_concurrency(tmp_path: Path) -> None:
    state = "/xapi/activities/state?" + urlencode({"activityId": "https://lessons.example/q1",
                                                    "agent": json.dumps(AGENT), "stateId": "resume"})
    profile = "/xapi/activities/profile?" + urlencode({"activityId": "https://lessons.example/q1",
                                                       "profileId": "settings"})

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get(state, headers=XAPI)
        assert r.status == 404
        assert (await c.put(state, json={"page": 3}, headers=XAPI)).status == 204
        assert (await c.put(state, json={"page": 4, "score": 1}, headers=XAPI)).status == 204  # state: no 409
        assert (await c.post(state, json={"page": 5}, headers=XAPI)).status == 204  # merged
        r = await c.get(state, headers=XAPI)
        content = await r.read()
        assert json.loads(content) == {"page": 5, "score": 1}
        assert r.headers["ETag"] == f'"{hashlib.sha1(content).hexdigest()}"' and "Last-Modified" in r.headers
        r = await c.post(state, data=b"not json", headers={**XAPI, "Content-Type": "text/plain"})
        assert r.status == 400  # POST merges JSON objects only; nothing changed
        ids = "/xapi/activities/state?" + urlencode({"activityId": "https://lessons.example/q1",
                                                     "agent": json.dumps(AGENT)})
        assert await (await c.get(ids, headers=XAPI)).json() == ["resume"]
        assert (await c.delete(ids, headers=XAPI)).status == 204
        assert (await c.get(state, headers=XAPI)).status == 404

        assert (await c.put(profile, json={"a": 1}, headers=XAPI)).status == 400  # a profile PUT says what it means
        assert (await c.put(profile, json={"a": 1}, headers={**XAPI, "If-None-Match": "*"})).status == 204
        tag = (await c.get(profile, headers=XAPI)).headers["ETag"]
        assert (await c.put(profile, json={"a": 2}, headers=XAPI)).status == 409
        assert (await c.put(profile, json={"a": 2}, headers={**XAPI, "If-Match": '"' + "0" * 40 + '"'})).status == 412
        assert (await c.put(profile, json={"a": 2}, headers={**XAPI, "If-Match": tag})).status == 204
        assert await (await c.get(profile, headers=XAPI)).json() == {"a": 2}

    serve(make_config(tmp_path), body)
    db = sqlite3.connect(tmp_path / "mastery" / "mastery.sqlite3")
    assert db.execute("SELECT count(*) FROM documents").fetchone() == (1,)


def test_voiding_removes_the_evidence_and_hides_the_statement(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())

    async def body(c: TestClient[Any, Any]) -> None:
        sts = [statement("stu-1", "fractions", True, "2024-05-01T10:00:00Z", sid),
               statement("stu-1", "fractions", False, "2024-05-01T10:01:00Z")]
        assert (await c.post("/xapi/statements", json=sts, headers=XAPI)).status == 200
        before = (await (await c.get("/api/v1/mastery/students/stu-1", headers=AUTH)).json())["skills"][0]
        voiding = {"actor": sts[0]["actor"], "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                   "object": {"objectType": "StatementRef", "id": sid}}
        assert (await c.post("/xapi/statements", json=voiding, headers=XAPI)).status == 200
        after = (await (await c.get("/api/v1/mastery/students/stu-1", headers=AUTH)).json())["skills"][0]
        assert before["responses"] == 2 and after["responses"] == 1 and after["p_known"] != before["p_known"]
        assert (await c.get(f"/xapi/statements?statementId={sid}", headers=XAPI)).status == 404
        r = await c.get(f"/xapi/statements?voidedStatementId={sid}", headers=XAPI)
        assert r.status == 200 and (await r.json())["id"] == sid
        ids = [s["id"] for s in (await (await c.get("/xapi/statements", headers=XAPI)).json())["statements"]]
        assert sid not in ids and len(ids) == 2

    serve(make_config(tmp_path), body)


def test_a_query_pages_through_more_consistently(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        sts = [statement(f"stu-{i % 2}", "k", True, f"2024-05-01T10:00:0{i}Z") for i in range(7)]
        r = await c.post("/xapi/statements", json=sts, headers=XAPI)
        stu0 = [sid for sid, s in zip(await r.json(), sts, strict=True) if s["actor"]["account"]["name"] == "stu-0"]
        agent = json.dumps({"account": {"homePage": "https://school.example", "name": "stu-0"}})
        url = "/xapi/statements?" + urlencode({"agent": agent, "limit": 2, "ascending": "true"})
        seen: list[str] = []
        pages = 0
        while url:
            r = await c.get(url, headers=XAPI)
            assert r.status == 200 and r.headers["X-Experience-API-Consistent-Through"]
            doc = await r.json()
            seen += [s["id"] for s in doc["statements"]]
            if pages == 0:  # a statement stored after the first page is not part of this result
                assert (await c.post("/xapi/statements", json=statement("stu-0", "k", True, "2024-05-01T11:00:00Z"),
                                     headers=XAPI)).status == 200
            url, pages = doc["more"], pages + 1
        assert seen == stu0 and pages == 2
        r = await c.get("/xapi/statements?more=bogus", headers=XAPI)
        assert r.status == 400 and "X-Experience-API-Consistent-Through" in r.headers

    serve(make_config(tmp_path), body)


def test_attachments_round_trip_as_multipart(tmp_path: Path) -> None:
    content = b"my essay\r\n--not a boundary--\r\n" * 100
    sha2 = hashlib.sha256(content).hexdigest()
    st = statement("stu-1", "k", True, "2024-05-01T10:00:00Z", str(uuid.uuid4()))
    st["attachments"] = [{"usageType": "http://id.tincanapi.com/attachment/supporting_media",
                          "display": {"en-US": "essay"}, "contentType": "text/plain", "length": len(content),
                          "sha2": sha2}]

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/xapi/statements", json=st, headers=XAPI)
        assert r.status == 400  # the content is missing: no part for it
        data, ctype = multipart.build(json.dumps(st).encode(), [(sha2, "text/plain", content)])
        r = await c.post("/xapi/statements", data=data, headers={**XAPI, "Content-Type": ctype})
        assert r.status == 200, await r.text()
        r = await c.get(f"/xapi/statements?statementId={st['id']}&attachments=true", headers=XAPI)
        statements_raw, parts = multipart.parse(await r.read(), r.headers["Content-Type"])
        assert json.loads(statements_raw)["id"] == st["id"] and parts[sha2].data == content

    serve(make_config(tmp_path), body)


def test_a_store_from_before_queries_is_indexed_at_start(tmp_path: Path) -> None:
    """Statements stored by a version without query columns are found by queries after an upgrade."""
    path = tmp_path / "mastery" / "mastery.sqlite3"
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE statements (id TEXT PRIMARY KEY, stored_at TEXT NOT NULL, digest TEXT NOT NULL, "
                "body TEXT NOT NULL)")
    st = {**statement("stu-9", "k", True, "2024-05-01T10:00:00Z", str(uuid.uuid4())),
          "stored": "2024-05-01T10:00:01Z", "version": "1.0.3"}
    old.execute("INSERT INTO statements VALUES (?, ?, ?, ?)", (st["id"], st["stored"], "d", json.dumps(st)))
    old.commit()
    old.close()

    async def body(c: TestClient[Any, Any]) -> None:
        agent = json.dumps({"account": {"homePage": "https://school.example", "name": "stu-9"}})
        doc = await (await c.get("/xapi/statements?" + urlencode({"agent": agent}), headers=XAPI)).json()
        assert [s["id"] for s in doc["statements"]] == [st["id"]]

    serve(make_config(tmp_path), body)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jws(tmp_path: Path, payload: dict[str, Any], key: str) -> bytes:
    """A compact RS256 JWS whose header carries the certificate (x5c), signed by `openssl` with `key`."""
    cert = ssl.PEM_cert_to_DER_cert((tmp_path / "cert.pem").read_text())
    header = {"alg": "RS256", "x5c": [base64.b64encode(cert).decode()]}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(tmp_path / key)], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    return f"{signing_input}.{_b64url(sig)}".encode()


def test_a_signed_statement_is_verified_against_its_x5c_certificate(tmp_path: Path) -> None:
    for name in ("key.pem", "other.pem"):
        subprocess.run(["openssl", "genrsa", "-out", str(tmp_path / name), "2048"], capture_output=True, check=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(tmp_path / "key.pem"), "-subj", "/CN=lesson",
                    "-days", "1", "-out", str(tmp_path / "cert.pem")], capture_output=True, check=True)
    st = statement("stu-1", "k", True, "2024-05-01T10:00:00Z")

    def signed(jws: bytes) -> tuple[bytes, str]:
        sha2 = hashlib.sha256(jws).hexdigest()
        body = {**st, "id": str(uuid.uuid4()), "attachments": [{
            "usageType": multipart.SIGNATURE_USAGE, "display": {"en-US": "signature"},
            "contentType": "application/octet-stream", "length": len(jws), "sha2": sha2}]}
        return multipart.build(json.dumps(body).encode(), [(sha2, "application/octet-stream", jws)])

    async def body(c: TestClient[Any, Any]) -> None:
        for jws, status in ((_jws(tmp_path, st, "key.pem"), 200),  # the certificate's own key
                            (_jws(tmp_path, st, "other.pem"), 400),  # another key: the signature fails
                            (_jws(tmp_path, {**st, "result": {"success": False}}, "key.pem"), 400)):  # altered
            data, ctype = signed(jws)
            r = await c.post("/xapi/statements", data=data, headers={**XAPI, "Content-Type": ctype})
            assert r.status == status, await r.text()

    serve(make_config(tmp_path), body)
