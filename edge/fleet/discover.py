"""Find the units on this LAN (`edge fleet discover`): browse `_classroom-edge._tcp`, resolve each service,
then ask every unit's services for `GET /healthz`.

mDNS has no "that is everyone": browsing lists what answered within `timeout_s` (units answer a query within
about a second). `count` stops as soon as that many units are resolved, for scripts that know how many to
expect.

Questions are always QM (answers multicast), never QU: a unicast answer to port 5353 on a host where
another mDNS stack (avahi-daemon on IT's laptop) shares that port reaches only one of the sockets, often
not ours; tests/fleet/test_avahi.py caught exactly that with python-zeroconf's default first QU question.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from zeroconf import DNSQuestionType, InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge.fleet.advertise import SERVICE_TYPE, Interfaces

# TXT port key -> the service (and config section) it belongs to
SERVICES = {"board": "web", "cache": "cache", "intake": "mastery"}
RESOLVE_TIMEOUT_MS = 3000


@dataclass
class Unit:
    name: str
    id: str
    room: str
    school: str
    version: str
    host: str
    addresses: list[str]
    ports: dict[str, int]
    api: str
    found_after_s: float
    health: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    @property
    def healthy(self) -> bool | None:
        """True when every service answered ok, None before health was checked."""
        if not self.health:
            return None
        return all(h.get("status") == "ok" for h in self.health.values())

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["healthy"] = self.healthy
        return doc


def _text(props: dict[bytes, bytes | None], key: str) -> str:
    value = props.get(key.encode())
    return value.decode("utf-8", errors="replace") if value is not None else ""


def unit_from_info(info: AsyncServiceInfo, found_after_s: float) -> Unit | None:
    """A Unit from a resolved service, or None when its TXT is not ours (no id, or bad ports)."""
    props = info.properties
    unit_id = _text(props, "id")
    if not unit_id:
        return None
    ports: dict[str, int] = {}
    for key, service in SERVICES.items():
        raw = _text(props, key)
        if raw:
            try:
                port = int(raw)
            except ValueError:
                return None
            if not 0 < port < 65536:
                return None
            ports[service] = port
    return Unit(
        name=info.name.removesuffix("." + SERVICE_TYPE), id=unit_id, room=_text(props, "room"),
        school=_text(props, "school"), version=_text(props, "version"), host=(info.server or "").rstrip("."),
        addresses=info.parsed_addresses(IPVersion.V4Only), ports=ports, api=_text(props, "api"),
        found_after_s=round(found_after_s, 3),
    )


async def browse(timeout_s: float, *, interfaces: Interfaces = InterfaceChoice.All,
                 count: int | None = None) -> list[Unit]:
    """The units that answered within `timeout_s` (or as soon as `count` were resolved), by school and room."""
    started = time.monotonic()
    units: dict[str, Unit] = {}
    enough = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async with AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only) as azc:

        async def resolve(name: str) -> None:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if await info.async_request(azc.zeroconf, RESOLVE_TIMEOUT_MS, question_type=DNSQuestionType.QM):
                unit = unit_from_info(info, time.monotonic() - started)
                if unit is not None:
                    units[name] = unit
                    if count is not None and len(units) >= count:
                        enough.set()

        def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                      state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                units.pop(name, None)
                return
            task = asyncio.ensure_future(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change],
                                      question_type=DNSQuestionType.QM)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), timeout=timeout_s)
        finally:
            await browser.async_cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return sorted(units.values(), key=lambda u: (u.school, u.room, u.id))


async def _health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(url, allow_redirects=False) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            status = body.get("status") if isinstance(body, dict) else None
            return {"url": url, "http": resp.status,
                    "status": str(status) if status is not None else ("ok" if resp.status == 200 else "error")}
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return {"url": url, "http": None, "status": "unreachable", "error": str(e) or type(e).__name__}


async def check_health(units: Sequence[Unit], timeout_s: float = 3.0) -> None:
    """Fill each unit's `health` with `GET /healthz` of its board, cache and intake services (concurrently)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        jobs: list[tuple[Unit, str, asyncio.Task[dict[str, Any]]]] = []
        for unit in units:
            if unit.address is None:
                continue
            for service, port in unit.ports.items():
                url = f"http://{unit.address}:{port}/healthz"
                jobs.append((unit, service, asyncio.ensure_future(_health(session, url))))
        for unit, service, task in jobs:
            unit.health[service] = await task


async def discover(timeout_s: float, *, interfaces: Interfaces = InterfaceChoice.All, count: int | None = None,
                   health: bool = True, health_timeout_s: float = 3.0) -> list[Unit]:
    units = await browse(timeout_s, interfaces=interfaces, count=count)
    if health:
        await check_health(units, health_timeout_s)
    return units


def format_table(units: Sequence[Unit]) -> str:
    if not units:
        return "no units answered (mDNS reaches only this network segment; see `edge fleet inventory " \
               "--from-collector` for units elsewhere)"
    rows = [("SCHOOL", "ROOM", "UNIT", "VERSION", "ADDRESS", "HEALTH")]
    for u in units:
        health = "-" if u.healthy is None else " ".join(f"{svc}:{h['status']}" for svc, h in u.health.items())
        rows.append((u.school or "-", u.room or "-", u.id[:12], u.version or "-", u.address or "-", health))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    return "\n".join(line.rstrip() for line in lines)
