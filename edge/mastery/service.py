"""The mastery service (aiohttp): xAPI intake from Chromebooks, compact evidence, and the mastery API.

Every accepted statement is committed to SQLite (WAL, synchronous=FULL) before the response. Requests are
group-committed by one writer thread: whatever arrived while the previous commit was fsyncing goes into the
next transaction, so 36 classroom Chromebooks cost one fsync per group, not one per request.
Auth: HTTP Basic, user `class`, password `mastery.class_key`. With no key configured the service refuses
evidence and mastery reads (503 naming the key) rather than accepting a classroom's data unauthenticated.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import json
import logging
import re
import tomllib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.config import EdgeConfig
from edge.exc import ConfigError
from edge.mastery.lessons import activity_skills as lesson_activity_skills
from edge.mastery.model import CellView, MasteryState
from edge.mastery.params import ParamSet, parse_params
from edge.mastery.store import Item, Store, WriteRequest
from edge.mastery.xapi import (
    StatementError,
    canonical,
    digest,
    digest_text,
    evidence_of,
    iso,
    now_us,
    parse_compact,
    validate_statement,
)
from edge.sdnotify import serve_until_signal
from edge.sync.outbox import Outbox
from edge.sync.service import SyncService
from edge.sync.status import outbox_path

log = logging.getLogger(__name__)
XAPI_VERSION = "1.0.3"
MAX_BODY = 1024 * 1024  # bytes per request
MAX_ITEMS = 1000  # statements or evidence items per request
AUTH_USER = "class"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers={"X-Experience-API-Version": XAPI_VERSION})


def effective_params(config: EdgeConfig, district_file: Path) -> ParamSet:
    """Config params, overridden per skill (and default, if given) by the district's params.toml, if any."""
    base = config.mastery.params
    if not district_file.exists():
        return base
    try:
        data = tomllib.loads(district_file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(str(district_file), "", f"cannot read: {e}") from None
    if "default" not in data:  # the district's skill tables inherit missing keys from the config default
        data = {"default": dataclasses.asdict(base.default), **data}
    district = parse_params(data, str(district_file))
    return ParamSet(default=district.default, skills={**base.skills, **district.skills})


@dataclass
class Mastery:
    """Everything one app instance owns: the store, its writer thread and queue, and the state."""

    config: EdgeConfig
    store: Store
    state: MasteryState
    executor: ThreadPoolExecutor
    activity_skills: Mapping[str, str]
    queue: asyncio.Queue[tuple[WriteRequest, asyncio.Future[None]]]
    sync: SyncService
    writer: asyncio.Task[None] | None = None
    background: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def snapshot_once(self) -> int:
        """Queue mastery snapshots of the cells that changed; wakes the uploader if there were any."""
        bands = self.config.mastery.bands
        n: int = await self.run_db(lambda: self.store.queue_snapshots(
            self.state.cells(), datetime.now(UTC), self.config.unit, lambda p: band(p, bands)))
        if n:
            log.info("queued %d mastery snapshots for the district", n)
            self.sync.wake()
        return n

    async def snapshot_loop(self) -> None:
        """Every `snapshot_minutes`, and once more when the service stops."""
        every = self.config.mastery.snapshot_minutes * 60
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=every)
            await self.snapshot_once()

    async def run_db(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def write(self, req: WriteRequest) -> None:
        """Queue a request for the next group commit; returns once it is durable (and applied)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((req, fut))
        await fut

    def _commit_and_apply(self, reqs: list[WriteRequest]) -> None:
        self.store.write_group(reqs)
        new = [ev for r in reqs for ev in r.new_evidence]
        if new:
            replayed = self.state.apply(new, self.store.history)
            if replayed:
                log.info("late evidence: replayed %d (student, skill) cells", replayed)

    async def writer_loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 256:
                batch.append(self.queue.get_nowait())
            reqs = [r for r, _ in batch]
            try:
                await self.run_db(lambda reqs=reqs: self._commit_and_apply(reqs))  # type: ignore[misc]
            except Exception as e:
                log.exception("evidence store failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)


MASTERY = web.AppKey("mastery", Mastery)


def _authorised(request: web.Request, key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), AUTH_USER.encode()) & hmac.compare_digest(
        password.encode(), key.encode())


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.app[MASTERY].config.mastery.class_key
    if not key:
        return error(503, "mastery.class_key is not set in edge.toml: evidence and mastery are refused "
                          "until a class key is configured")
    if not _authorised(request, key):
        denied = error(401, "HTTP Basic auth required: user 'class', password = the class key")
        denied.headers["WWW-Authenticate"] = 'Basic realm="classroom-edge mastery"'
        return denied
    if request.path.startswith("/xapi/"):
        version = request.headers.get("X-Experience-API-Version", "")
        if not version.startswith("1.0"):
            return error(400, "X-Experience-API-Version header is required (1.0.x)",
                         "X-Experience-API-Version")
    try:
        resp = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request body is larger than {MAX_BODY} bytes")
    if request.path.startswith("/xapi/"):
        resp.headers["X-Experience-API-Version"] = XAPI_VERSION
    return resp


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.read()  # aiohttp enforces client_max_size (413) for chunked bodies
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StatementError("body", f"invalid JSON: {e}") from None
    # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 store or LRS can hold: refuse it here
    # (only bodies with a \uD8xx-\uDFxx escape pay for the check)
    if re.search(rb"\\u[dD][89a-fA-F]", raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise StatementError("body", "contains a lone surrogate escape (not valid Unicode text)") from None
    return body


AUTHORITY_JSON = json.dumps({"objectType": "Agent", "account": {"homePage": "urn:classroom-edge", "name": AUTH_USER}})
VERSION_JSON = json.dumps(XAPI_VERSION)


def _statement_items(
    m: Mastery, statements: list[Any], where: str, stored_us: int
) -> tuple[list[Item], list[str]]:
    """Validated items to store (a repeat within the request once) and every statement's id, in order.

    Each statement is encoded once: its canonical text gives the digest, and the bodies for the store and the
    district are that text with the properties this LRS sets appended (JSON key order carries no meaning).
    """
    items: list[Item] = []
    ids: list[str] = []
    seen: dict[str, str] = {}
    stored_json = json.dumps(iso(stored_us))
    version_tail = f',"version":{VERSION_JSON}}}'
    stored_tail = f',"stored":{stored_json},"authority":{AUTHORITY_JSON}}}'
    for i, raw in enumerate(statements):
        field = f"{where}[{i}]" if where else "statement"
        sent = validate_statement(raw, field)  # a fresh dict
        for key in ("stored", "authority", "version"):  # the LRS's to set
            sent.pop(key, None)
        if "id" not in sent:
            sent["id"] = str(uuid.uuid4())
        sid: str = sent["id"]
        text = canonical(sent)
        d = digest_text(text)
        ids.append(sid)
        if sid in seen:
            if seen[sid] != d:
                raise StatementError(f"{field}.id", "repeats an earlier statement id in this request")
            continue
        seen[sid] = d
        # as sent, with a timestamp (when it was stored, if it had none) and the version: what the district gets
        outbound = text[:-1] + ("" if "timestamp" in sent else f',"timestamp":{stored_json}') + version_tail
        body = outbound[:-1] + stored_tail  # as stored here and served by GET
        items.append(Item(sid, d, body, evidence_of(sent, stored_us, m.activity_skills), outbound))
    return items, ids


async def _store(m: Mastery, items: list[Item], stored_us: int) -> web.Response | None:
    req = WriteRequest(items, iso(stored_us))
    await m.write(req)
    if req.conflict is not None:
        return error(409, f"id {req.conflict} was already stored with different content", "id")
    return None


async def post_statements(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    try:
        body = await _json_body(request)
        many = isinstance(body, list)
        statements = body if many else [body]
        if not statements:
            raise StatementError("body", "no statements")
        if len(statements) > MAX_ITEMS:
            return error(413, f"at most {MAX_ITEMS} statements per request")
        stored_us = now_us()
        items, ids = _statement_items(m, statements, "statements" if many else "", stored_us)
    except StatementError as e:
        return error(400, str(e), e.field)
    if (resp := await _store(m, items, stored_us)) is not None:
        return resp
    return web.json_response(ids)


async def put_statement(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    sid = request.query.get("statementId", "").lower()
    try:
        if not sid:
            raise StatementError("statementId", "query parameter is required")
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise StatementError("statement", "must be a JSON object")
        if "id" in body and str(body["id"]).lower() != sid:
            raise StatementError("statement.id", "differs from statementId")
        stored_us = now_us()
        items, _ = _statement_items(m, [{**body, "id": sid}], "", stored_us)
    except StatementError as e:
        return error(400, str(e), e.field)
    if (resp := await _store(m, items, stored_us)) is not None:
        return resp
    return web.Response(status=204)


async def get_statement(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    sid = request.query.get("statementId", "").lower()
    if not sid:
        return error(400, "statementId is required (this endpoint serves single statements)", "statementId")
    st = await m.run_db(lambda: m.store.statement(sid))
    if st is None:
        return error(404, "no such statement", "statementId")
    return web.json_response(st)


async def post_evidence(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    try:
        body = await _json_body(request)
        if not isinstance(body, list):
            raise StatementError("body", "must be a JSON array of {id, student, skill, correct, timestamp}")
        if len(body) > MAX_ITEMS:
            return error(413, f"at most {MAX_ITEMS} evidence items per request")
        items: dict[str, Item] = {}
        for i, raw in enumerate(body):
            ev = parse_compact(raw, f"[{i}]")
            d = digest({"student": ev.student, "skill": ev.skill, "correct": ev.correct, "ts_us": ev.ts_us})
            if ev.id in items and items[ev.id].digest != d:
                raise StatementError(f"[{i}].id", "repeats an earlier id in this request")
            items[ev.id] = Item(ev.id, d, None, ev)
    except StatementError as e:
        return error(400, str(e), e.field)
    if (resp := await _store(m, list(items.values()), now_us())) is not None:
        return resp
    return web.json_response({"ids": list(items)})


def band(p: float, bands: list[float]) -> str:
    return "needs_help" if p < bands[0] else "practising" if p < bands[1] else "mastered"


def _cells(views: list[CellView], bands: list[float], key: str) -> list[dict[str, Any]]:
    return [{key: getattr(v, key), "p_known": v.p_known, "responses": v.responses, "band": band(v.p_known, bands)}
            for v in views]


async def get_mastery(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    skill = request.query.get("skill", "")
    if not skill:
        return error(400, "skill query parameter is required", "skill")
    views = m.state.by_skill(skill)
    return web.json_response({"skill": skill, "bands": m.config.mastery.bands,
                              "students": _cells(views, m.config.mastery.bands, "student")})


async def get_student(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    student = request.match_info["student"]
    views = m.state.by_student(student)
    if views is None:
        return error(404, "no evidence for this student", "student")
    return web.json_response({"student": student, "bands": m.config.mastery.bands,
                              "skills": _cells(views, m.config.mastery.bands, "skill")})


async def get_sync(request: web.Request) -> web.StreamResponse:
    """District sync status: backlog, oldest unsent, last success/error, quarantined (also `edge sync status`)."""
    m = request.app[MASTERY]
    return web.json_response(await m.run_db(m.sync.status))


async def post_sync(request: web.Request) -> web.StreamResponse:
    """'Sync now': start an upload round at once (it runs in the background; poll GET for the outcome)."""
    m = request.app[MASTERY]
    if not m.config.district.lrs_url:
        return error(409, "sync is off: no district.lrs_url configured (evidence is kept)", "district.lrs_url")
    m.sync.wake()
    return web.json_response({"status": "sync round started"}, status=202)


def make_app(config: EdgeConfig, activity_skills: Mapping[str, str] | None = None) -> web.Application:
    """A fresh app on `config.state_dir / "mastery"`; the store opens on startup and closes on cleanup.

    `activity_skills` maps lesson activity ids to skills (default: the manifests in `mastery.manifests`);
    statements may also name their skill in context (see edge.mastery.xapi).
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[auth_middleware])
    directory = config.state_dir / "mastery"
    skills_map = dict(activity_skills) if activity_skills is not None else lesson_activity_skills(config)

    async def startup(app: web.Application) -> None:
        params = effective_params(config, directory / "params.toml")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastery-store")
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(executor, Store, directory / "mastery.sqlite3",
                                           config.mastery.account_home_page)
        state = MasteryState(params)
        rows = await loop.run_in_executor(executor, store.all_evidence)
        await loop.run_in_executor(executor, state.load, rows)
        # the district sync runs in this process, on the outbox inside the same SQLite file
        sync = SyncService(config, outbox=Outbox(outbox_path(config)))
        m = Mastery(config, store, state, executor, skills_map, asyncio.Queue(), sync)
        m.writer = asyncio.create_task(m.writer_loop())
        m.background = [asyncio.create_task(sync.run(m.stop)), asyncio.create_task(m.snapshot_loop())]
        app[MASTERY] = m

    async def cleanup(app: web.Application) -> None:
        m = app[MASTERY]
        m.stop.set()  # the snapshot loop takes a last snapshot and ends; the uploader stops mid-round (safe)
        sync_task, snapshot_task = m.background
        sync_task.cancel()
        await asyncio.gather(sync_task, asyncio.wait_for(snapshot_task, 30), return_exceptions=True)
        m.sync.outbox.close()
        if m.writer is not None:
            m.writer.cancel()
            await asyncio.gather(m.writer, return_exceptions=True)
        await m.run_db(m.store.close)
        m.executor.shutdown(wait=True)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_post("/xapi/statements", post_statements)
    app.router.add_put("/xapi/statements", put_statement)
    app.router.add_get("/xapi/statements", get_statement)
    app.router.add_post("/api/v1/evidence", post_evidence)
    app.router.add_get("/api/v1/mastery", get_mastery)
    app.router.add_get("/api/v1/mastery/students/{student}", get_student)
    app.router.add_get("/api/v1/sync", get_sync)
    app.router.add_post("/api/v1/sync", post_sync)
    return app


async def start_mastery(config: EdgeConfig) -> web.AppRunner:
    """Start the service on mastery.host:port inside a running loop (for `edge run`); cleanup() stops it."""
    runner = web.AppRunner(make_app(config), access_log=None)  # access logs would carry student ids
    await runner.setup()
    site = web.TCPSite(runner, config.mastery.host, config.mastery.port)
    await site.start()
    log.info("mastery service on http://%s:%d", config.mastery.host, config.mastery.port)
    if not config.mastery.class_key:
        log.warning("mastery.class_key is not set: the service refuses evidence until it is")
    return runner


def serve_forever(config: EdgeConfig) -> None:
    """`edge mastery serve`: run in the foreground until SIGTERM or SIGINT."""

    async def cleanup(runner: web.AppRunner) -> None:
        await runner.cleanup()

    asyncio.run(serve_until_signal(lambda: start_mastery(config), cleanup))
