"""Offline evidence replay (`edge mastery replay`): the CSV events file, timestamps, and the BKT pass.

Used by district data staff to recompute estimates from an export, and by us to check the service: the
service's state for a (student, skill) equals this replay of its stored evidence.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from edge_native import bkt

from edge.csvfile import read_csv
from edge.exc import EventsFileError
from edge.limits import EVIDENCE_ID_MAX, SKILL_MAX, STUDENT_ID_MAX, name_problem
from edge.params import ParamSet, parse_params
from edge.tomlfile import read_toml
from edge.xapi.formats import parse_event_time as parse_timestamp

EVENT_COLUMNS = ("event_id", "student", "skill", "correct", "timestamp")
MAX_EVENTS = 5_000_000  # rows of one events file (a district's year of evidence for a school is well under)
OUT_COLUMNS = ("event_id", "student", "skill", "p_correct", "p_known_after")
TRUE_WORDS = {"1": True, "true": True, "0": False, "false": False}


def parse_correct(text: str) -> bool:
    """`0`, `1`, `true`, `false` (any case) → bool; anything else raises ValueError."""
    try:
        return TRUE_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"correct must be 0, 1, true or false, got {text!r}") from None


@dataclass(frozen=True)
class Event:
    """One response: who answered what, whether it was right, and when (epoch seconds)."""

    event_id: str
    student: str
    skill: str
    correct: bool
    timestamp: Decimal


@dataclass(frozen=True)
class ReplayRow:
    event_id: str
    student: str
    skill: str
    p_correct: float
    p_known_after: float


def read_events(path: str | Path) -> list[Event]:
    """Parse and de-duplicate an events CSV (first occurrence of an event_id wins; a conflicting repeat errors)."""
    file = str(path)
    events: list[Event] = []
    seen: dict[str, tuple[int, Event]] = {}
    for row in read_csv(path, EVENT_COLUMNS, max_rows=MAX_EVENTS, error=EventsFileError):
        line, values = row.line, row.values
        for c, max_len in (("event_id", EVIDENCE_ID_MAX), ("student", STUDENT_ID_MAX), ("skill", SKILL_MAX)):
            if (problem := name_problem(values[c], c, max_len)) is not None:
                raise EventsFileError(file, line, f"{c} is empty" if not values[c] else problem)
        try:
            correct = parse_correct(values["correct"])
            timestamp = parse_timestamp(values["timestamp"])
        except ValueError as e:
            raise EventsFileError(file, line, str(e)) from None
        event = Event(values["event_id"], values["student"], values["skill"], correct, timestamp)
        if event.event_id in seen:
            first_line, first = seen[event.event_id]
            if first != event:
                raise EventsFileError(
                    file, line, f"event_id {event.event_id!r} repeats line {first_line} with different content"
                )
            continue
        seen[event.event_id] = (line, event)
        events.append(event)
    return events


def load_params_file(path: str | Path) -> ParamSet:
    """A PARAMS.toml with `[default]` and optional `[skills."<skill>"]` tables (errors name the key); the
    `[mastery.params...]` block copied from an edge.toml works too."""
    data = read_toml(path)
    mastery = data.get("mastery")
    if set(data) == {"mastery"} and isinstance(mastery, dict) and set(mastery) == {"params"}:
        return parse_params(mastery["params"], str(path), "mastery.params")
    return parse_params(data, str(path))


def params_array(params: ParamSet, skills: Sequence[str]) -> np.ndarray:
    """The kernel's (n_skills, 5) parameter array for `skills`, in that order."""
    rows = []
    for skill in skills:
        sp = params.for_skill(skill)
        rows.append(bkt.param_row(sp.prior, sp.learn, sp.forget, sp.guess, sp.slip))
    return np.array(rows, dtype=np.float64).reshape(len(rows), bkt.N_PARAMS)


def replay(events: Iterable[Event], params: ParamSet) -> list[ReplayRow]:
    """Run every event through the kernel in (timestamp, event_id) order; rows come back in that order."""
    ordered = sorted(events, key=lambda e: (e.timestamp, e.event_id))
    students: dict[str, int] = {}
    skills: dict[str, int] = {}
    s_idx = np.fromiter((students.setdefault(e.student, len(students)) for e in ordered), np.int32, len(ordered))
    k_idx = np.fromiter((skills.setdefault(e.skill, len(skills)) for e in ordered), np.int32, len(ordered))
    correct = np.fromiter((e.correct for e in ordered), np.uint8, len(ordered))
    pa = params_array(params, list(skills))
    state = bkt.init_state(pa, len(students))
    out = np.empty((len(ordered), 2), dtype=np.float64)
    bkt.update(state, pa, s_idx, k_idx, correct, out)
    return [
        ReplayRow(e.event_id, e.student, e.skill, float(out[i, 0]), float(out[i, 1]))
        for i, e in enumerate(ordered)
    ]


def format_rows(rows: Iterable[ReplayRow]) -> str:
    """CSV text with OUT_COLUMNS; probabilities as shortest round-trip decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(OUT_COLUMNS)
    for r in rows:
        writer.writerow((r.event_id, r.student, r.skill, repr(r.p_correct), repr(r.p_known_after)))
    return buf.getvalue()
