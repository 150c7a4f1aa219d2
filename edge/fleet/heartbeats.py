"""The heartbeat document a unit sends (edge/sync/heartbeat.py) as the collector stores it, and what the fleet
page and API show of each unit: every field checked and bounded; a bad one is a 400 naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.exc import RequestError
from edge.limits import whole

MAX_NUMBER = 2**63  # any count, size or age a heartbeat carries (SQLite's integers stop there)
MAX_NAME = 100  # room, school
MAX_SHORT = 64  # version, kernel, pin factory, unit id
MAX_HOST = 253
MAX_FAULTS = 20
MAX_FAULT = 200
UNIT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SORT_KEYS = ("school", "room", "status", "last_seen", "version", "backlog", "oldest_unsent", "faults", "disk_free",
             "clock")
STATUSES = ("online", "offline", "faulty")


def bad(key: str, reason: str) -> RequestError:
    """A 400 naming the field of the heartbeat (or query parameter) that is wrong."""
    return RequestError(400, f"{key}: {reason}", key=key, reason=reason)


def _str(doc: Mapping[str, Any], key: str, where: str, limit: int, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise bad(f"{where}{key}", "must be a string" if value is not None else "is required")
    if len(value) > limit:
        raise bad(f"{where}{key}", f"must be at most {limit} characters")
    return value


def _num(doc: Mapping[str, Any], key: str, *, integer: bool = False) -> float | int | None:
    value = doc.get(key)
    if value is None:
        return None
    if integer:  # 27.0 is an integer to JSON Schema (and to the document): take it as 27
        value = whole(value)
        if value is None:
            raise bad(key, "must be an integer or null")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(key, "must be a number or null")
    if value < 0 or value != value or value > MAX_NUMBER:
        raise bad(key, "must be a non-negative finite number")
    return value


def parse_heartbeat(body: Any) -> dict[str, Any]:
    """The stored form of a heartbeat: known fields only, checked and bounded (else a 400 naming the field)."""
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object (the heartbeat document)")
    unit = body.get("unit")
    if not isinstance(unit, dict):
        raise bad("unit", "must be an object with id, room, school, hostname")
    uid = _str(unit, "id", "unit.", MAX_SHORT)
    if not UNIT_ID.fullmatch(uid):
        raise bad("unit.id", "must be 1..64 letters, digits, '.', '_', '-'")
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
        raise bad("clock_synced", "must be true, false or null")
    doc["clock_synced"] = synced
    faults = body.get("faults", [])
    if faults is None:
        faults = []
    if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
        raise bad("faults", "must be a list of strings")
    if len(faults) > MAX_FAULTS or any(len(f) > MAX_FAULT for f in faults):
        raise bad("faults", f"at most {MAX_FAULTS} faults of at most {MAX_FAULT} characters")
    doc["faults"] = faults
    ports = body.get("ports") or {}
    numbers = {k: whole(v) for k, v in ports.items()} if isinstance(ports, dict) else None
    if numbers is None or any(k not in ("web", "cache", "mastery") or n is None or not 0 < n < 65536
                              for k, n in numbers.items()):
        raise bad("ports", "must map web/cache/mastery to TCP ports 1..65535")
    doc["ports"] = numbers
    return doc


def _sent_at(text: str | None) -> float | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo else None


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
            raise bad("sort", f"must be one of {', '.join(SORT_KEYS)}")
        order = query.get("order", "asc") or "asc"
        if order not in ("asc", "desc"):
            raise bad("order", "must be asc or desc")
        status = query.get("status", "")
        if status and status not in STATUSES:
            raise bad("status", f"must be one of {', '.join(STATUSES)}")
        q = query.get("q", "")
        school = query.get("school", "")
        if len(q) > MAX_NAME or len(school) > MAX_NAME:
            raise bad("q" if len(q) > MAX_NAME else "school", f"must be at most {MAX_NAME} characters")
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
