"""The district collector (`edge fleet serve`, on a district server): receives the units' heartbeats, keeps the
last state of every unit (edge.fleet.store) and serves the fleet page and its JSON API (OpenAPI 3.1 at
/api/v1/openapi.json).

- `POST /api/v1/heartbeat`: the document edge/sync/heartbeat.py sends, with `Authorization: Bearer <token>`
  where the token is the one `[fleet.tokens]` gives the unit's school. 204 once it is on disk.
- `GET /api/v1/units` (filter/sort like the page), `GET /api/v1/units/{id}`, `GET /api/v1/schools`.
- `GET /` the fleet page (units by school; online/offline by last seen; sortable and filterable).
- `GET /metrics` the fleet for Prometheus (edge.fleet.metrics); `GET /healthz` the collector's own health.
- Every error is JSON `{"error": message, "status": code}`: 4xx for anything a client did, never a traceback.
Bounded: request bodies (16 KiB), every string field, the number of faults, the number of units.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from edge import __version__
from edge.config import EdgeConfig
from edge.fleet.metrics import Exposition
from edge.fleet.store import ACCEPTED, FULL, OTHER_SCHOOL, FleetStore, Heartbeat, load_units
from edge.sdnotify import serve_until_signal

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024
MAX_NAME = 100  # room, school
MAX_SHORT = 64  # version, kernel, pin factory, unit id
MAX_HOST = 253
MAX_FAULTS = 20
MAX_FAULT = 200
UNIT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
HERE = Path(__file__).resolve().parent
SORT_KEYS = ("school", "room", "status", "last_seen", "version", "backlog", "oldest_unsent", "faults", "disk_free",
             "clock")
STATUSES = ("online", "offline", "faulty")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], float]


class BadHeartbeat(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


# ---------------------------------------------------------------------------------------------------------
# the heartbeat document


def _str(doc: Mapping[str, Any], key: str, where: str, limit: int, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadHeartbeat(f"{where}{key}", "must be a string" if value is not None else "is required")
    if len(value) > limit:
        raise BadHeartbeat(f"{where}{key}", f"must be at most {limit} characters")
    return value


def _num(doc: Mapping[str, Any], key: str, *, integer: bool = False) -> float | int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise BadHeartbeat(key, f"must be {'an integer' if integer else 'a number'} or null")
    if value < 0 or value != value or value > 2**63:
        raise BadHeartbeat(key, "must be a non-negative finite number")
    return value


def parse_heartbeat(body: Any) -> dict[str, Any]:
    """The stored form of a heartbeat: known fields only, checked and bounded (raises BadHeartbeat)."""
    if not isinstance(body, dict):
        raise BadHeartbeat("body", "must be a JSON object (the heartbeat document)")
    unit = body.get("unit")
    if not isinstance(unit, dict):
        raise BadHeartbeat("unit", "must be an object with id, room, school, hostname")
    uid = _str(unit, "id", "unit.", MAX_SHORT)
    if not UNIT_ID.fullmatch(uid):
        raise BadHeartbeat("unit.id", "must be 1..64 letters, digits, '.', '_', '-'")
    doc: dict[str, Any] = {
        "unit": {"id": uid, "room": _str(unit, "room", "unit.", MAX_NAME),
                 "school": _str(unit, "school", "unit.", MAX_NAME),
                 "hostname": _str(unit, "hostname", "unit.", MAX_HOST, required=False)},
        "version": _str(body, "version", "", MAX_SHORT),
        "kernel": _str(body, "kernel", "", MAX_SHORT, required=False) or None,
        "pin_factory": _str(body, "pin_factory", "", MAX_SHORT, required=False) or None,
        "sent_at": _str(body, "sent_at", "", MAX_SHORT, required=False) or None,
    }
    for key in ("uptime_s", "host_uptime_s", "oldest_unsent_age_s"):
        doc[key] = _num(body, key)
    for key in ("backlog", "cache_bytes", "disk_free_bytes", "disk_total_bytes"):
        doc[key] = _num(body, key, integer=True)
    synced = body.get("clock_synced")
    if synced is not None and not isinstance(synced, bool):
        raise BadHeartbeat("clock_synced", "must be true, false or null")
    doc["clock_synced"] = synced
    faults = body.get("faults", [])
    if faults is None:
        faults = []
    if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
        raise BadHeartbeat("faults", "must be a list of strings")
    if len(faults) > MAX_FAULTS or any(len(f) > MAX_FAULT for f in faults):
        raise BadHeartbeat("faults", f"at most {MAX_FAULTS} faults of at most {MAX_FAULT} characters")
    doc["faults"] = faults
    ports = body.get("ports") or {}
    if not isinstance(ports, dict) or any(
            k not in ("web", "cache", "mastery") or isinstance(v, bool) or not isinstance(v, int)
            or not 0 < v < 65536 for k, v in ports.items()):
        raise BadHeartbeat("ports", "must map web/cache/mastery to TCP ports 1..65535")
    doc["ports"] = ports
    return doc


def _sent_at(text: str | None) -> float | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo else None


# ---------------------------------------------------------------------------------------------------------
# views: what the page and the API show of a unit


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unit_view(row: Mapping[str, Any], now: float, offline_s: float) -> dict[str, Any]:
    doc = row["doc"]
    age = max(0.0, now - row["last_seen"])
    sent = _sent_at(doc.get("sent_at"))
    return {
        "id": row["id"], "school": row["school"], "room": row["room"], "hostname": row["hostname"],
        "version": row["version"], "address": row["address"],
        "status": "offline" if age > offline_s else "online",
        "last_seen": iso(row["last_seen"]), "last_seen_age_s": round(age, 1), "first_seen": iso(row["first_seen"]),
        "heartbeats": row["heartbeats"],
        "backlog": doc.get("backlog"), "oldest_unsent_age_s": doc.get("oldest_unsent_age_s"),
        "faults": doc.get("faults", []),
        "disk_free_bytes": doc.get("disk_free_bytes"), "disk_total_bytes": doc.get("disk_total_bytes"),
        "clock_synced": doc.get("clock_synced"),
        # how far the unit's clock was from ours when it sent its last heartbeat (network delay included)
        "clock_offset_s": None if sent is None else round(sent - row["last_seen"], 1),
        "uptime_s": doc.get("uptime_s"), "kernel": doc.get("kernel"), "pin_factory": doc.get("pin_factory"),
        "ports": doc.get("ports", {}),
    }


def _sort_value(u: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    none_last = (1, 0)
    match key:
        case "school" | "room" | "version":
            return (0, str(u[key]).casefold())
        case "status":
            return (0, u["status"] != "offline", -u["last_seen_age_s"])  # offline first, longest silent first
        case "last_seen":
            return (0, u["last_seen_age_s"])
        case "backlog":
            return none_last if u["backlog"] is None else (0, u["backlog"])
        case "oldest_unsent":
            return none_last if u["oldest_unsent_age_s"] is None else (0, u["oldest_unsent_age_s"])
        case "faults":
            return (0, len(u["faults"]))
        case "disk_free":
            return none_last if u["disk_free_bytes"] is None else (0, u["disk_free_bytes"])
        case "clock":
            return (0, {False: 0, None: 1, True: 2}[u["clock_synced"]])
    raise ValueError(key)


@dataclass
class Query:
    school: str = ""
    status: str = ""
    q: str = ""
    sort: str = "room"
    order: str = "asc"

    @classmethod
    def from_request(cls, query: Mapping[str, str]) -> Query:
        sort = query.get("sort", "room") or "room"
        if sort not in SORT_KEYS:
            raise BadHeartbeat("sort", f"must be one of {', '.join(SORT_KEYS)}")
        order = query.get("order", "asc") or "asc"
        if order not in ("asc", "desc"):
            raise BadHeartbeat("order", "must be asc or desc")
        status = query.get("status", "")
        if status and status not in STATUSES:
            raise BadHeartbeat("status", f"must be one of {', '.join(STATUSES)}")
        q = query.get("q", "")
        school = query.get("school", "")
        if len(q) > MAX_NAME or len(school) > MAX_NAME:
            raise BadHeartbeat("q" if len(q) > MAX_NAME else "school", f"must be at most {MAX_NAME} characters")
        return cls(school=school, status=status, q=q, sort=sort, order=order)

    def apply(self, units: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = units
        if self.school:
            out = [u for u in out if u["school"] == self.school]
        if self.status == "faulty":
            out = [u for u in out if u["faults"]]
        elif self.status:
            out = [u for u in out if u["status"] == self.status]
        if self.q:
            needle = self.q.casefold()
            out = [u for u in out if any(needle in str(u[k] or "").casefold()
                                         for k in ("id", "room", "school", "hostname", "version", "address"))]
        out = sorted(out, key=lambda u: (_sort_value(u, self.sort), u["room"].casefold(), u["id"]),
                     reverse=self.order == "desc")
        return out


def school_summary(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    schools: dict[str, dict[str, Any]] = {}
    for u in units:
        s = schools.setdefault(u["school"], {"school": u["school"], "units": 0, "online": 0, "offline": 0,
                                             "faulty": 0, "versions": {}})
        s["units"] += 1
        s[u["status"]] += 1
        s["faulty"] += bool(u["faults"])
        s["versions"][u["version"]] = s["versions"].get(u["version"], 0) + 1
    return [schools[k] for k in sorted(schools, key=str.casefold)]


# ---------------------------------------------------------------------------------------------------------
# the service


@dataclass
class Collector:
    config: EdgeConfig
    store: FleetStore
    reader: sqlite3.Connection
    executor: ThreadPoolExecutor  # the one writer thread
    read_executor: ThreadPoolExecutor
    now: Clock
    token_schools: dict[bytes, str]  # sha256(token) -> school
    templates: jinja2.Environment
    queue: asyncio.Queue[tuple[Heartbeat, asyncio.Future[None]]] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    received: int = 0
    refused: int = 0
    metrics: Exposition | None = None

    @property
    def offline_s(self) -> float:
        return self.config.fleet.offline_minutes * 60

    def school_of(self, token: str) -> str | None:
        """The school whose token this is; the token's hash is compared in constant time to every school's."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, school in self.token_schools.items():
            if hmac.compare_digest(known, digest):
                found = school
        return found

    async def write(self, hb: Heartbeat) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((hb, fut))
        await fut

    async def writer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 1000:
                batch.append(self.queue.get_nowait())
            beats = [hb for hb, _ in batch]
            try:
                await loop.run_in_executor(self.executor, self.store.write_group, beats)
            except Exception as e:
                log.exception("fleet store write failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def views(self) -> list[dict[str, Any]]:
        rows = await asyncio.get_running_loop().run_in_executor(self.read_executor, load_units, self.reader)
        now = self.now()
        return [unit_view(r, now, self.offline_s) for r in rows]


COLLECTOR = web.AppKey("collector", Collector)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as `{"error", "status"}`; a failure of our own is a 503 naming the store, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = {404: f"no such page or API: {request.path}",
                   405: f"{request.method} is not allowed on {request.path}",
                   413: f"request body is larger than {MAX_BODY} bytes"}.get(e.status, e.reason)
        return error(e.status, message)
    except BadHeartbeat as e:
        return error(400, str(e))
    except (sqlite3.Error, OSError) as e:
        log.error("fleet store unavailable: %s", e)
        return error(503, "the fleet store is unavailable; try again later")


async def post_heartbeat(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    school = c.school_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if school is None:
        c.refused += 1
        return error(401, "a district token is required: Authorization: Bearer <the school's token>",
                     {"WWW-Authenticate": 'Bearer realm="classroom-edge fleet"'})
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        c.refused += 1
        return error(400, f"body: invalid JSON: {e}")
    try:
        doc = parse_heartbeat(body)
    except BadHeartbeat as e:
        c.refused += 1
        return error(400, str(e))
    unit = doc["unit"]
    if unit["school"] != school:
        c.refused += 1
        return error(403, f"this token is {school!r}'s; the heartbeat names school {unit['school']!r}")
    hb = Heartbeat(unit["id"], school, unit["room"], unit["hostname"], doc["version"], request.remote,
                   c.now(), doc)
    await c.write(hb)
    if hb.outcome == OTHER_SCHOOL:
        c.refused += 1
        return error(409, f"unit id {hb.unit_id!r} belongs to school {hb.owner_school!r} "
                          "(`edge fleet forget` it on the collector if the unit moved)")
    if hb.outcome == FULL:
        c.refused += 1
        return error(507, f"the collector keeps at most {c.store.max_units} units (fleet.max_units)")
    assert hb.outcome == ACCEPTED
    c.received += 1
    return web.Response(status=204)


async def get_units(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    query = Query.from_request(request.query)
    views = await c.views()
    return web.json_response({"generated_at": iso(c.now()), "offline_minutes": c.config.fleet.offline_minutes,
                              "total": len(views), "units": query.apply(views)})


async def get_unit(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    uid = request.match_info["unit_id"]
    for view in await c.views():
        if view["id"] == uid:
            return web.json_response(view)
    return error(404, f"no unit {uid!r} has reported")


async def get_schools(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    return web.json_response({"generated_at": iso(c.now()), "schools": school_summary(await c.views())})


async def get_openapi(request: web.Request) -> web.StreamResponse:
    from edge.fleet.openapi import spec

    return web.json_response(spec())


async def get_healthz(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    try:
        await asyncio.get_running_loop().run_in_executor(
            c.read_executor, lambda: c.reader.execute("SELECT count(*) FROM units").fetchone())
    except sqlite3.Error as e:
        return web.json_response({"status": "failing", "error": f"fleet store: {e}"}, status=503)
    writer_ok = c.writer is not None and not c.writer.done()
    return web.json_response({"status": "ok" if writer_ok else "failing", "service": "fleet", "version": __version__,
                              "units": len(c.store.schools)}, status=200 if writer_ok else 503)


async def get_metrics(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    assert c.metrics is not None
    body = await c.metrics.render(c.views)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


async def get_page(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    try:
        query = Query.from_request(request.query)
    except BadHeartbeat:
        query = Query()  # the page ignores a bad sort/filter rather than refusing to show the fleet
    views = await c.views()
    # every unit is on the page, in the requested order; the ones the filter leaves out carry `hidden`, so
    # fleet.js can widen a filter without a round trip and a browser without JS still shows the filtered view
    visible = {u["id"] for u in query.apply(views)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for u in Query(sort=query.sort, order=query.order).apply(views):
        groups.setdefault(u["school"], []).append(u)
    summary = {s["school"]: s for s in school_summary(views)}
    html = c.templates.get_template("fleet.html").render(
        groups=sorted(groups.items(), key=lambda kv: kv[0].casefold()), summary=summary, query=query,
        visible=visible, total=len(views), shown=len(visible), offline_minutes=c.config.fleet.offline_minutes,
        generated_at=iso(c.now()), schools=sorted(summary, key=str.casefold), sort_keys=SORT_KEYS,
        statuses=STATUSES, version=__version__)
    return web.Response(text=html, content_type="text/html",
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


# ---- template helpers


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["ago"] = _ago
    env.filters["size"] = _bytes
    return env


def make_app(config: EdgeConfig, *, now: Clock = time.time) -> web.Application:
    """A fresh collector on `fleet.db` (default <state_dir>/fleet/fleet.sqlite3)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    path = Path(config.fleet.db) if config.fleet.db else config.state_dir / "fleet" / "fleet.sqlite3"

    async def startup(app: web.Application) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-store")
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(executor, FleetStore, path, config.fleet.max_units)
        token_schools = {hashlib.sha256(t.encode()).digest(): s for s, t in config.fleet.tokens.items()}
        if not token_schools:
            log.warning("no [fleet.tokens]: every heartbeat will be refused (401) until schools have tokens")
        c = Collector(config, store, store.reader(), executor,
                      ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-read"), now, token_schools,
                      templates())
        c.writer = asyncio.create_task(c.writer_loop())
        c.metrics = Exposition(lambda: {"received": c.received, "refused": c.refused})
        app[COLLECTOR] = c

    async def cleanup(app: web.Application) -> None:
        c = app[COLLECTOR]
        if c.writer is not None:
            c.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await c.writer
        c.read_executor.submit(c.reader.close).result()
        c.read_executor.shutdown(wait=True)
        c.executor.submit(c.store.close).result()
        c.executor.shutdown(wait=True)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/", get_page)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_post("/api/v1/heartbeat", post_heartbeat)
    app.router.add_get("/api/v1/units", get_units)
    app.router.add_get("/api/v1/units/{unit_id}", get_unit)
    app.router.add_get("/api/v1/schools", get_schools)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app


async def start_collector(config: EdgeConfig, *, now: Clock = time.time) -> web.AppRunner:
    runner = web.AppRunner(make_app(config, now=now), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.fleet.host, config.fleet.port, backlog=1024)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        from edge.exc import EdgeError

        raise EdgeError(f"cannot serve the fleet collector on {config.fleet.host}:{config.fleet.port}: "
                        f"{e.strerror or e}") from e
    log.info("fleet collector on http://%s:%d/ (%d school tokens)", config.fleet.host, config.fleet.port,
             len(config.fleet.tokens))
    return runner


def serve_forever(config: EdgeConfig) -> None:
    """`edge fleet serve`: until SIGTERM/SIGINT, with READY/WATCHDOG for systemd."""

    async def cleanup(runner: web.AppRunner) -> None:
        await runner.cleanup()

    asyncio.run(serve_until_signal(lambda: start_collector(config), cleanup))
