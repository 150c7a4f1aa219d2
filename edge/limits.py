"""Every bound on what comes in, declared once: plans, periods, names, ids, config numbers.

The limits lie far beyond anything a real classroom does (a 4-hour work period, 50 rounds, 40 stations), so
they never get in a teacher's way, but they keep a typo, a fuzzer or a hostile page from saving a plan that
freezes the timer or a name that breaks every page. The plan and period parsers, the config loader, the
OpenAPI documents, the plan form and the README all read them from here.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

# rotation plans
WORK_MINUTES_MIN = 0.05  # 3 s: tests and demos run short plans; no lesson is shorter
WORK_MINUTES_MAX = 240.0  # 4 h
WARNING_SECONDS_MAX = 1800.0  # and always shorter than the work period
TRANSITION_SECONDS_MAX = 1800.0  # 30 min to move between stations
ROUNDS_MAX = 50
STATIONS_MAX = 40
GROUPS_MAX = 40
MEMBERS_MAX = 60  # students in one group
LESSONS_MAX = 20  # lesson links at one station
LESSON_PATH_MAX = 512

# names and ids
NAME_MAX = 60  # plans, stations, groups, periods (long names wrap or truncate, with the full name as a title)
STUDENT_ID_MAX = 64  # pseudonymous ids (OneRoster sourcedIds are shorter)
SKILL_MAX = 200  # skill names, often IRIs
EVIDENCE_ID_MAX = 200  # the id a client gives a compact evidence item

# evidence: items per request, and when an answer can have happened (epoch seconds, up to 9999-12-31)
REQUEST_ITEMS_MAX = 1000
EVENT_TIME_MAX_S = 253_402_300_799

# JSON bodies: arrays and objects nested deeper than this are refused (xAPI extensions nest a few levels)
JSON_DEPTH_MAX = 64

# bell schedule
PERIODS_MAX = 50


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def whole(value: Any) -> int | None:
    """`value` as a whole number: an int, or a float with nothing after the point (JSON and JSON Schema do not
    tell 27 from 27.0); None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and finite(value) and value.is_integer():
        return int(value)
    return None


def name_problem(value: Any, what: str = "name", max_len: int = NAME_MAX) -> str | None:
    """Why `value` cannot be a name shown on the pages (None when it can).

    A name is non-empty text of at most `max_len` characters without control characters (NUL, newlines,
    tabs...), bidirectional overrides or isolates (they can make a name read backwards on every page), lone
    surrogates or other unassigned code points.
    """
    if not isinstance(value, str) or not value.strip():
        return f"{what} must be a non-empty string"
    if len(value) > max_len:
        return f"{what} must be at most {max_len} characters (got {len(value)})"
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Co", "Cn") or unicodedata.bidirectional(ch) in ("LRE", "RLE", "LRO", "RLO", "PDF",
                                                                                  "LRI", "RLI", "FSI", "PDI"):
            return f"{what} must not contain control or text-direction characters (found U+{ord(ch):04X})"
    return None
