"""HTTP semantics the cache needs (RFC 9110/9111): ranges, validators, conditionals, freshness.

Pure functions on header values so that hits, in-progress downloads and tests share one implementation.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

MAX_RANGES = 16  # more parts than this (or overlapping parts) get the full 200: cheap to abuse otherwise
INFINITE = math.inf


class Unsatisfiable(Exception):
    """Every range in a syntactically valid Range header lies outside the representation (→ 416)."""


def http_date(ts: float) -> str:
    """An IMF-fixdate for a Unix timestamp."""
    return formatdate(ts, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """Unix timestamp of an HTTP date, or None when absent or malformed."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Satisfiable byte ranges as (start, end-exclusive), or None to ignore the header (serve 200).

    Raises Unsatisfiable when the header is valid but no range overlaps the representation.
    A malformed header is ignored, as RFC 9110 §14.2 allows.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges: list[tuple[int, int]] = []
    any_valid = False
    for part in spec.split(","):
        if not part.strip():
            continue  # RFC 9110 allows empty list elements
        m = _RANGE_SPEC.fullmatch(part)
        if not m or (not m[1] and not m[2]):
            return None
        any_valid = True
        if not m[1]:  # suffix: the last N bytes
            n = int(m[2])
            if n > 0 and size > 0:
                ranges.append((max(0, size - n), size))
            continue
        start = int(m[1])
        end = int(m[2]) + 1 if m[2] else size
        if m[2] and end <= start:
            return None  # last < first: invalid, ignore the header
        if start < size:
            ranges.append((start, min(end, size)))
    if not any_valid:
        return None
    if not ranges:
        raise Unsatisfiable()
    if len(ranges) > MAX_RANGES:
        return None
    ordered = sorted(ranges)
    if any(b[0] < a[1] for a, b in itertools.pairwise(ordered)):
        return None  # overlapping parts: answer with the whole thing rather than inflate the response
    return ranges


def _etags(header: str) -> list[str]:
    """The entity-tags of an If-Match/If-None-Match list (`*` returned as itself)."""
    return re.findall(r'\*|(?:W/)?"[^"]*"', header)


def is_strong(etag: str | None) -> bool:
    return bool(etag) and not etag.startswith("W/")  # type: ignore[union-attr]


def etag_matches(header: str, etag: str | None, *, weak: bool) -> bool:
    """Whether `etag` is in an ETag list; weak comparison ignores W/, strong needs both strong."""
    if etag is None:
        return False
    for tag in _etags(header):
        if tag == "*":
            return True
        if weak:
            if tag.removeprefix("W/") == etag.removeprefix("W/"):
                return True
        elif is_strong(tag) and is_strong(etag) and tag == etag:
            return True
    return False


def check_conditionals(headers: Mapping[str, str], etag: str | None, last_modified: float | None) -> int | None:
    """The status a GET/HEAD must answer instead of the content (304 or 412), or None to proceed.

    Evaluation order follows RFC 9110 §13.2.2: If-Match, If-Unmodified-Since, If-None-Match,
    If-Modified-Since (the date checks only when the matching ETag header is absent).
    """
    if_match = headers.get("If-Match")
    if if_match is not None:
        if not etag_matches(if_match, etag, weak=False):
            return 412
    else:
        ius = parse_http_date(headers.get("If-Unmodified-Since"))
        if ius is not None and last_modified is not None and last_modified > ius:
            return 412
    inm = headers.get("If-None-Match")
    if inm is not None:
        return 304 if etag_matches(inm, etag, weak=True) else None
    ims = parse_http_date(headers.get("If-Modified-Since"))
    if ims is not None and last_modified is not None and int(last_modified) <= ims:
        return 304
    return None


def if_range_allows(headers: Mapping[str, str], etag: str | None, last_modified: float | None) -> bool:
    """Whether a Range request may be answered partially (If-Range absent or still matching).

    aiohttp's own FileResponse ignores ETag If-Range; a mismatched or weak ETag must get the full 200.
    """
    value = headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return etag_matches(value, etag, weak=False)
    ts = parse_http_date(value)
    # A date is only a usable validator when it equals Last-Modified exactly (RFC 9110 §13.1.5).
    return ts is not None and last_modified is not None and int(last_modified) == int(ts)


@dataclass(frozen=True)
class Freshness:
    """How long a stored response may be reused, from upstream's Cache-Control/Expires (RFC 9111 §4.2)."""

    store: bool
    fresh_until: float
    swr_s: float  # stale-while-revalidate window after fresh_until
    sie_s: float  # stale-if-error window after fresh_until (INFINITE: always, the point of an offline cache)


def _directives(cache_control: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.lower()] = value.strip().strip('"')
    return out


def _seconds(value: str | None) -> float | None:
    if value is None or not value.isdigit():
        return None
    return float(value)


def freshness(headers: Mapping[str, str], default_ttl_s: float, now: float | None = None) -> Freshness:
    """Freshness of a response received at `now`; the default TTL applies when upstream says nothing."""
    now = time.time() if now is None else now
    cc = _directives(headers.get("Cache-Control", ""))
    # We are a shared cache: `private` and `no-store` responses are passed through, never stored.
    store = "no-store" not in cc and "private" not in cc
    age = _seconds(headers.get("Age")) or 0.0
    lifetime = _seconds(cc.get("s-maxage"))
    if lifetime is None:
        lifetime = _seconds(cc.get("max-age"))
    if lifetime is None and "expires" in {k.lower() for k in headers}:
        expires = parse_http_date(headers.get("Expires"))
        date = parse_http_date(headers.get("Date")) or now
        lifetime = max(0.0, expires - date) if expires is not None else 0.0  # invalid Expires = stale
    if lifetime is None:
        lifetime = float(default_ttl_s)
    if "no-cache" in cc:
        lifetime = 0.0
    swr = _seconds(cc.get("stale-while-revalidate")) or 0.0
    strict = bool({"must-revalidate", "proxy-revalidate", "no-cache"} & cc.keys())
    sie = _seconds(cc.get("stale-if-error"))
    if sie is None:
        sie = 0.0 if strict else INFINITE
    return Freshness(store=store, fresh_until=now + max(0.0, lifetime - age), swr_s=swr, sie_s=sie)
