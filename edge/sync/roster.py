"""OneRoster 1.1 CSV import (orgs, classes, users, enrollments) into the unit's class list.

Source: a directory, a .zip (files at any depth), a `file://` URL, or the configured `district.roster_url`
(http/https, a zip). Student ids are the pseudonymous `sourcedId`s. Names are kept only when the caller
passes `keep_names=True` (from `district.roster_names`) and never reach a log: log lines carry counts only.

Rules: the columns OneRoster 1.1 marks required must be present (extra columns are fine); every reference
(class→school, user→orgs, enrollment→class/school/user, org→parent) must resolve, else a RosterError names
file, line, column and the bad value's kind. `status=tobedeleted` rows are dropped (delta files, per
`manifest.csv`, delete them from the stored roster); enrollments of dropped users/classes are dropped too.
When `unit.school` is set, only that school's classes (and their people) are kept.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import ssl
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from edge.config import EdgeConfig
from edge.exc import RosterError
from edge.fsutil import atomic_write

log = logging.getLogger(__name__)

FILES = ("orgs.csv", "classes.csv", "users.csv", "enrollments.csv")
REQUIRED: dict[str, tuple[str, ...]] = {
    "orgs.csv": ("sourcedId", "name", "type"),
    "classes.csv": ("sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"),
    "users.csv": ("sourcedId", "enabledUser", "orgSourcedIds", "role", "username", "givenName", "familyName"),
    "enrollments.csv": ("sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"),
}
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("orgs.csv", "type"): frozenset({"department", "school", "district", "local", "state", "national"}),
    ("classes.csv", "classType"): frozenset({"homeroom", "scheduled"}),
    ("users.csv", "role"): frozenset({"administrator", "aide", "guardian", "parent", "proctor", "relative",
                                      "student", "teacher"}),
    ("enrollments.csv", "role"): frozenset({"administrator", "proctor", "student", "teacher"}),
    ("users.csv", "enabledUser"): frozenset({"true", "false"}),
}
STATUSES = frozenset({"", "active", "tobedeleted"})
MAX_BYTES = 200 * 1024 * 1024


@dataclass
class Roster:
    """The unit's class list. Users: {"role", "enabled", and "givenName"/"familyName" only if names kept}."""

    orgs: dict[str, dict[str, str]] = field(default_factory=dict)
    classes: dict[str, dict[str, str]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[str, dict[str, str]] = field(default_factory=dict)

    def students_of(self, class_id: str) -> list[str]:
        return sorted(e["user"] for e in self.enrollments.values()
                      if e["class"] == class_id and e["role"] == "student")

    def summary(self) -> dict[str, int]:
        roles = [u["role"] for u in self.users.values()]
        return {"orgs": len(self.orgs), "classes": len(self.classes), "students": roles.count("student"),
                "teachers": roles.count("teacher"), "enrollments": len(self.enrollments)}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Roster:
        doc = json.loads(data)
        return cls(**{k: dict(doc.get(k, {})) for k in ("orgs", "classes", "users", "enrollments")})


# -- reading the sources ------------------------------------------------------------------------------------
def read_dir(path: Path) -> dict[str, str]:
    out = {}
    for name in (*FILES, "manifest.csv"):
        p = path / name
        if p.is_file():
            out[name] = p.read_bytes().decode("utf-8-sig")
    return out


def read_zip(data: bytes, origin: str) -> dict[str, str]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RosterError(origin, "not a zip file") from None
    out = {}
    with zf:
        for info in zf.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if base in (*FILES, "manifest.csv") and not info.is_dir():
                if info.file_size > MAX_BYTES:
                    raise RosterError(base, "file too large")
                out[base] = zf.read(info).decode("utf-8-sig")
    return out


def read_local(path: Path) -> dict[str, str]:
    if path.is_dir():
        return read_dir(path)
    if path.is_file():
        return read_zip(path.read_bytes(), path.name)
    raise RosterError(str(path), "no such file or directory")


async def fetch(config: EdgeConfig, url: str, *, timeout_s: float = 120.0) -> dict[str, str]:
    """Download the configured roster URL (a zip). Only `district.roster_url` is ever fetched."""
    d = config.district
    if url != d.roster_url:
        raise RosterError(url, "only the configured district.roster_url is downloaded")
    from edge.sync.heartbeat import same_origin
    from edge.sync.uploader import auth_header, ssl_context

    headers = {}
    if d.lrs_url and same_origin(url, d.lrs_url) and (auth := auth_header(d)) is not None:
        headers["Authorization"] = auth  # district credentials only go back to the district LRS's host
    ctx: ssl.SSLContext | bool = ssl_context(d) if url.startswith("https://") else False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False) as s, \
                s.get(url, headers=headers, ssl=ctx) as resp:
            if resp.status != 200:
                raise RosterError(url, f"download failed: HTTP {resp.status}")
            data = await resp.content.read(MAX_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise RosterError(url, f"download failed: {type(e).__name__}") from None
    if len(data) > MAX_BYTES:
        raise RosterError(url, "download too large")
    return read_zip(data, url)


def read_source(config: EdgeConfig, source: str) -> dict[str, str]:
    """Files of a dir/zip path, a file:// URL, or the configured http(s) roster URL."""
    if source.startswith(("http://", "https://")):
        import asyncio

        return asyncio.run(fetch(config, source))
    if source.startswith("file://"):
        return read_local(Path(unquote(urlsplit(source).path)))
    return read_local(Path(source))


# -- parsing and checking -------------------------------------------------------------------------------------
@dataclass
class _Table:
    name: str
    rows: list[tuple[int, dict[str, str]]]
    delta: bool


def _parse(name: str, text: str, delta: bool) -> _Table:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise RosterError(name, "empty file (no header row)")
    header = [h.strip() for h in reader.fieldnames]
    reader.fieldnames = header
    missing = [c for c in REQUIRED[name] if c not in header]
    if missing:
        raise RosterError(name, f"missing required column(s): {', '.join(missing)}")
    rows: list[tuple[int, dict[str, str]]] = []
    seen: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise RosterError(name, "more values than columns", line)
            clean = {k: (v or "").strip() for k, v in row.items()}
            for col in REQUIRED[name]:
                if not clean[col] and not (col in ("givenName", "familyName", "username", "termSourcedIds",
                                                   "courseSourcedId") and clean.get("status") == "tobedeleted"):
                    raise RosterError(name, "required value is empty", line, col)
            status = clean.get("status", "")
            if status not in STATUSES:
                raise RosterError(name, "status must be empty, active or tobedeleted", line, "status")
            for (file, col), allowed in ENUMS.items():
                if file == name and clean[col] and clean[col].lower() not in allowed \
                        and not clean[col].startswith("ext:"):
                    raise RosterError(name, f"must be one of {', '.join(sorted(allowed))}", line, col)
            if clean["sourcedId"] in seen:
                raise RosterError(name, "duplicate sourcedId", line, "sourcedId")
            seen.add(clean["sourcedId"])
            rows.append((line, clean))
    except csv.Error as e:
        raise RosterError(name, f"bad CSV: {e}", reader.reader.line_num) from None  # (DictReader.line_num lags)
    return _Table(name, rows, delta)


def _modes(files: Mapping[str, str]) -> dict[str, str]:
    """file name -> bulk/delta/absent from manifest.csv (propertyName,value rows: file.users,bulk)."""
    modes = {f: ("bulk" if f in files else "absent") for f in FILES}
    if "manifest.csv" in files:
        for row in csv.reader(io.StringIO(files["manifest.csv"])):
            if len(row) >= 2 and row[0].startswith("file."):
                key = row[0][5:] + ".csv"
                if key in modes and row[1].strip().lower() in ("bulk", "delta", "absent"):
                    modes[key] = row[1].strip().lower()
    return modes


def build_roster(files: Mapping[str, str], *, previous: Roster | None = None, school: str = "",
                 keep_names: bool = False) -> Roster:
    """Validate the CSVs and build the class list (applying delta files on top of `previous`)."""
    modes = _modes(files)
    for name in FILES:
        if modes[name] != "absent" and name not in files:
            raise RosterError(name, "listed in manifest.csv but missing")
        if modes[name] == "absent" and previous is None:
            raise RosterError(name, "missing (orgs, classes, users and enrollments are all needed)")
    tables = {n: _parse(n, files[n], modes[n] == "delta") for n in FILES if n in files and modes[n] != "absent"}
    prev = previous or Roster()
    r = Roster()

    def merge(name: str, old: dict[str, dict[str, Any]], make: Any) -> dict[str, dict[str, Any]]:
        t = tables.get(name)
        if t is None:
            return dict(old)
        out = dict(old) if t.delta else {}
        for _line, row in t.rows:
            if row.get("status") == "tobedeleted":
                out.pop(row["sourcedId"], None)
            else:
                out[row["sourcedId"]] = make(row)
        return out

    r.orgs = merge("orgs.csv", prev.orgs, lambda row: {
        "name": row["name"], "type": row["type"].lower(), "parent": row.get("parentSourcedId", ""),
        "identifier": row.get("identifier", "")})
    r.classes = merge("classes.csv", prev.classes, lambda row: {
        "title": row["title"], "school": row["schoolSourcedId"], "classCode": row.get("classCode", "")})

    def user(row: dict[str, str]) -> dict[str, Any]:
        u: dict[str, Any] = {"role": row["role"].lower(), "enabled": row["enabledUser"].lower() == "true",
                             "orgs": [o.strip() for o in row["orgSourcedIds"].split(",") if o.strip()]}
        if keep_names:
            u["givenName"], u["familyName"] = row["givenName"], row["familyName"]
        return u

    r.users = merge("users.csv", prev.users, user)
    r.enrollments = merge("enrollments.csv", prev.enrollments, lambda row: {
        "class": row["classSourcedId"], "school": row["schoolSourcedId"], "user": row["userSourcedId"],
        "role": row["role"].lower()})
    if not keep_names:
        for u in r.users.values():
            u.pop("givenName", None)
            u.pop("familyName", None)

    _check_references(r, tables, prev)
    return _for_school(r, school) if school else r


def _check_references(r: Roster, tables: Mapping[str, _Table], prev: Roster) -> None:
    """Every reference in an active row resolves; a reference to a deleted row drops the referrer instead."""
    deleted: dict[str, set[str]] = {n: set() for n in FILES}
    for n, t in tables.items():
        deleted[n] = {row["sourcedId"] for _, row in t.rows if row.get("status") == "tobedeleted"}

    def check(file: str, line: int, column: str, value: str, target: dict[str, Any], target_file: str) -> bool:
        if value in target:
            return True
        if value in deleted[target_file]:
            return False
        raise RosterError(file, f"refers to a sourcedId not in {target_file}", line, column)

    lines = {n: {row["sourcedId"]: line for line, row in t.rows} for n, t in tables.items()}
    for oid, org in list(r.orgs.items()):
        line = lines.get("orgs.csv", {}).get(oid, 0)
        if org["parent"]:
            check("orgs.csv", line, "parentSourcedId", org["parent"], r.orgs, "orgs.csv")
    for cid, cls in list(r.classes.items()):
        line = lines.get("classes.csv", {}).get(cid, 0)
        if not check("classes.csv", line, "schoolSourcedId", cls["school"], r.orgs, "orgs.csv"):
            del r.classes[cid]
    for uid, u in list(r.users.items()):
        line = lines.get("users.csv", {}).get(uid, 0)
        for o in u["orgs"]:
            check("users.csv", line, "orgSourcedIds", o, r.orgs, "orgs.csv")
        if not u["enabled"]:
            del r.users[uid]
            deleted["users.csv"].add(uid)
    for eid, e in list(r.enrollments.items()):
        line = lines.get("enrollments.csv", {}).get(eid, 0)
        ok = check("enrollments.csv", line, "classSourcedId", e["class"], r.classes, "classes.csv")
        ok = check("enrollments.csv", line, "userSourcedId", e["user"], r.users, "users.csv") and ok
        ok = check("enrollments.csv", line, "schoolSourcedId", e["school"], r.orgs, "orgs.csv") and ok
        if not ok:
            del r.enrollments[eid]


def _for_school(r: Roster, school: str) -> Roster:
    """Keep only the classes of the org whose sourcedId, identifier or name is `school`."""
    ids = {oid for oid, o in r.orgs.items() if school in (oid, o["name"], o.get("identifier"))}
    if not ids:
        raise RosterError("orgs.csv", f"no org matches unit.school {school!r}")
    classes = {k: v for k, v in r.classes.items() if v["school"] in ids}
    enrollments = {k: v for k, v in r.enrollments.items() if v["class"] in classes}
    people = {e["user"] for e in enrollments.values()}
    users = {k: v for k, v in r.users.items() if k in people}
    orgs = {k: v for k, v in r.orgs.items() if k in ids or any(k in u["orgs"] for u in users.values())}
    return Roster(orgs, classes, users, enrollments)


# -- storing ------------------------------------------------------------------------------------------------------
def roster_path(config: EdgeConfig) -> Path:
    return config.state_dir / "roster" / "roster.json"


def load_roster(config: EdgeConfig) -> Roster | None:
    p = roster_path(config)
    return Roster.from_json(p.read_bytes()) if p.exists() else None


def import_roster(config: EdgeConfig, source: str, *, keep_names: bool | None = None) -> Roster:
    """Read, validate and store the roster atomically (a bad import leaves the previous one in place).

    Names are kept only if `keep_names` (default: `district.roster_names`) allows it.
    """
    if keep_names is None:
        keep_names = config.district.roster_names
    files = read_source(config, source)
    roster = build_roster(files, previous=load_roster(config), school=config.unit.school, keep_names=keep_names)
    atomic_write(roster_path(config), roster.to_json())
    log.info("roster imported: %s", ", ".join(f"{v} {k}" for k, v in roster.summary().items()))
    return roster
