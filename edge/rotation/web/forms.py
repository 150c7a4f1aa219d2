"""The teacher page's plan and period forms: form fields <-> documents, and PlanError keys -> form fields.

parse_plan names the first problem by key ("plan.stations[1].kind"); blank rows are dropped before parsing,
so the key's index is mapped back to the row the teacher sees, and the message is shown beside that field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from edge.config import WEEKDAYS, PeriodConfig
from edge.rotation.plan import KINDS, Plan

BLANK_ROWS = 2
_ROW = re.compile(r"(stations|groups|periods)-(\d+)-")
_FIELD = re.compile(r"(stations|groups|periods)-(\d+)-(\w+)")
_KEY = re.compile(r"(?:plan\.)?(stations|groups|periods)\[(\d+)\](?:\.(\w+))?")
TOP_FIELDS = ("name", "work_minutes", "warning_seconds", "transition_seconds", "rounds")
FIELD_LABELS = {"name": "Name", "work_minutes": "Work minutes", "warning_seconds": "Warning seconds",
                "transition_seconds": "Move seconds", "rounds": "Rounds", "stations": "Stations", "groups": "Groups",
                "periods": "Periods", "form": "Plan", "kind": "kind", "lessons": "lesson links", "members": "members",
                "plan": "plan", "days": "days", "start": "start"}


@dataclass
class Form:
    """What the editor template draws: field values, repeated rows, and errors by field id."""

    values: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # doc index -> row index per list, for mapping error keys back to rows
    row_of: dict[str, list[int]] = field(default_factory=dict)

    def error(self, key: str, reason: str) -> None:
        """Attach a validation message to the field a plan/period key names (the first one per field)."""
        self.errors.setdefault(self.field_for(key), reason)

    def label(self, fid: str) -> str:
        """What the teacher calls field `fid`, for the error summary ("Station 2 kind")."""
        m = _FIELD.fullmatch(fid)
        if m is not None:
            noun = {"stations": "Station", "groups": "Group", "periods": "Period"}[m[1]]
            return f"{noun} {int(m[2]) + 1} {FIELD_LABELS.get(m[3], m[3])}"
        return FIELD_LABELS.get(fid, fid.replace("_", " ").capitalize())

    def field_for(self, key: str) -> str:
        m = _KEY.match(key)
        if m:
            kind, idx, sub = m[1], int(m[2]), m[3]
            rows = self.row_of.get(kind, [])
            row = rows[idx] if idx < len(rows) else idx
            return f"{kind}-{row}-{sub}" if sub else f"{kind}-{row}-name"
        name = key.removeprefix("plan.")
        if name in ("stations", "groups", "periods"):
            return name
        return name if name in TOP_FIELDS else "form"


def _split(text: str, lines_only: bool) -> list[str]:
    parts = text.splitlines() if lines_only else re.split(r"[\s,;]+", text)
    return [p.strip() for p in parts if p.strip()]


def _number(raw: str) -> int | float | str | None:
    """A number if the text is one; otherwise the text itself so the plan parser names the problem."""
    s = raw.strip()
    if not s:
        return None
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            continue
    return s


def _row_indices(form: Mapping[str, Any], kind: str) -> list[int]:
    found = {int(m[2]) for k in form if (m := _ROW.match(k)) and m[1] == kind}
    return sorted(found)


def plan_form(plan: Plan | None) -> Form:
    f = Form()
    if plan is not None:
        doc = plan.to_toml()["plan"]
        f.values = {k: str(doc.get(k, "")) for k in TOP_FIELDS}
        f.values["original"] = plan.name
        f.rows["stations"] = [{"name": s.name, "kind": s.kind, "lessons": "\n".join(s.lessons)}
                              for s in plan.stations]
        f.rows["groups"] = [{"name": g.name, "members": " ".join(g.members)} for g in plan.groups]
    else:
        f.values = {"name": "", "work_minutes": "15", "warning_seconds": "60", "transition_seconds": "90",
                    "rounds": "", "original": ""}
        f.rows["stations"], f.rows["groups"] = [], []
    for kind, blank in (("stations", {"name": "", "kind": "offline", "lessons": ""}),
                        ("groups", {"name": "", "members": ""})):
        f.rows[kind] += [dict(blank) for _ in range(BLANK_ROWS)]
    return f


def plan_from_form(form: MultiDict[str, str]) -> tuple[Form, dict[str, Any]]:
    """The submitted form (to redraw it) and the plan document to validate; blank rows are left out."""
    f = Form()
    f.values = {k: form.get(k, "") for k in (*TOP_FIELDS, "original")}
    doc: dict[str, Any] = {}
    for k in TOP_FIELDS:
        raw = f.values[k]
        if k == "name":
            doc["name"] = raw
        elif (num := _number(raw)) is not None:
            doc[k] = num
    stations: list[dict[str, Any]] = []
    f.rows["stations"], f.row_of["stations"] = [], []
    for i in _row_indices(form, "stations"):
        row = {"name": form.get(f"stations-{i}-name", ""), "kind": form.get(f"stations-{i}-kind", ""),
               "lessons": form.get(f"stations-{i}-lessons", "")}
        if not row["name"].strip() and not row["lessons"].strip():
            continue
        f.row_of["stations"].append(len(f.rows["stations"]))
        f.rows["stations"].append(row)
        station: dict[str, Any] = {"name": row["name"].strip(), "kind": row["kind"]}
        if lessons := _split(row["lessons"], lines_only=True):
            station["lessons"] = lessons
        stations.append(station)
    groups: list[dict[str, Any]] = []
    f.rows["groups"], f.row_of["groups"] = [], []
    for i in _row_indices(form, "groups"):
        row = {"name": form.get(f"groups-{i}-name", ""), "members": form.get(f"groups-{i}-members", "")}
        if not row["name"].strip() and not row["members"].strip():
            continue
        f.row_of["groups"].append(len(f.rows["groups"]))
        f.rows["groups"].append(row)
        group: dict[str, Any] = {"name": row["name"].strip()}
        if members := _split(row["members"], lines_only=False):
            group["members"] = members
        groups.append(group)
    doc["stations"], doc["groups"] = stations, groups
    f.rows["stations"].append({"name": "", "kind": "offline", "lessons": ""})
    f.rows["groups"].append({"name": "", "members": ""})
    return f, {"plan": doc}


def periods_form(periods: list[PeriodConfig]) -> Form:
    f = Form()
    f.rows["periods"] = [{"name": p.name, "plan": p.plan, "days": list(p.days), "start": p.start}
                         for p in periods]
    f.rows["periods"] += [{"name": "", "plan": "", "days": list(WEEKDAYS[:5]), "start": ""}
                          for _ in range(BLANK_ROWS)]
    return f


def periods_from_form(form: MultiDict[str, str]) -> tuple[Form, list[dict[str, Any]]]:
    f = Form()
    f.rows["periods"], f.row_of["periods"] = [], []
    items: list[dict[str, Any]] = []
    for i in _row_indices(form, "periods"):
        row: dict[str, Any] = {"name": form.get(f"periods-{i}-name", ""), "plan": form.get(f"periods-{i}-plan", ""),
                               "days": form.getlist(f"periods-{i}-days"), "start": form.get(f"periods-{i}-start", "")}
        if not row["name"].strip() and not row["plan"] and not row["start"].strip():
            continue
        f.row_of["periods"].append(len(f.rows["periods"]))
        f.rows["periods"].append(row)
        items.append({"name": row["name"].strip(), "plan": row["plan"], "days": row["days"],
                      "start": row["start"].strip()})
    f.rows["periods"].append({"name": "", "plan": "", "days": list(WEEKDAYS[:5]), "start": ""})
    return f, items


KIND_LABELS = {k: {"online": "Online", "teacher": "Teacher table", "offline": "Offline"}[k] for k in KINDS}
