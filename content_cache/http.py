"""HTTP semantics the cache needs (RFC 9110/9111, RFC 5861, RFC 9213): what may be stored, for how long, which
stored response answers which request (Vary), how old it is, what a 304 changes, what an unsafe method
invalidates, conditionals and ranges.

Pure functions on header values (parsed by content_cache.fields), so that hits, downloads in progress and
tests share one implementation. The cache is a *shared* cache: s-maxage and `private` apply to it.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from content_cache.fields import (
    Directives,
    Fields,
    delta_seconds,
    end_to_end,
    field_names,
    http_date,
    lines,
    list_members,
    parse_age,
    parse_cache_control,
    parse_http_date,
    parse_sf_dictionary,
)

__all__ = ["http_date", "parse_http_date"]  # re-exported: the cache's modules take dates from here

MAX_RANGES = 16  # more parts than this (or overlapping parts) get the full 200: cheap to abuse otherwise
INFINITE = math.inf
HEURISTIC_FRACTION = 0.1  # RFC 9111 §4.2.2: "typically 10%" of the time since Last-Modified
HEURISTIC_MAX_S = 86400.0  # ... capped: a lesson changed last year is still asked about once a day
# RFC 9110 §15.1 heuristically cacheable statuses (206 is one too, but partial responses are not stored here).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# Statuses whose caching semantics this cache knows (RFC 9111 §5.2.2.3 must-understand); not 206 or 304,
# which it never stores as responses of their own.
UNDERSTOOD_STATUSES = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 451,
                                 500, 501, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
TARGETED = ("CDN-Cache-Control",)  # RFC 9213 targeted fields this cache obeys, in order
# Request headers whose list order carries no meaning here (RFC 9110 §12.5): sorted when Vary selects on them.
_UNORDERED = frozenset({"accept", "accept-charset", "accept-encoding", "accept-language"})
_DELTA_DIRECTIVES = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error")


class Unsatisfiable(Exception):
    """Every range in a syntactically valid Range header lies outside the representation (→ 416)."""


# -- which Cache-Control applies (RFC 9111 §5.2, RFC 9213) -------------------------------------------------

@dataclass(frozen=True)
class CacheControl:
    """The response directives in force: from a valid targeted field (then Expires is ignored) or Cache-Control."""

    directives: Directives
    targeted: bool = False

    def __contains__(self, name: str) -> bool:
        return name in self.directives

    def seconds(self, name: str) -> int | None:
        return delta_seconds(self.directives.get(name))

    def fields(self, name: str) -> list[str] | None:
        """None when `name` is absent or unqualified; else the field names it lists (no-cache, private)."""
        if name not in self.directives or self.directives[name] is None:
            return None
        return field_names(self.directives[name])


def _from_sf(sf: Mapping[str, object]) -> Directives | None:
    """A structured-field dictionary as directives; None when a known directive has the wrong type."""
    out: Directives = {}
    for name, value in sf.items():
        if name in _DELTA_DIRECTIVES:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return None
            out[name] = str(value)
        elif value is True:
            out[name] = None
        elif isinstance(value, list) and name in ("no-cache", "private"):
            out[name] = ", ".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def response_directives(headers: Fields, targeted: tuple[str, ...] = TARGETED) -> CacheControl:
    """RFC 9213 §2.2: the first valid, non-empty targeted field replaces Cache-Control and Expires."""
    for name in targeted:
        found = lines(headers, name)
        if found:
            sf = parse_sf_dictionary(found)
            converted = _from_sf(sf) if sf is not None else None
            if converted:
                return CacheControl(converted, targeted=True)
    return CacheControl(parse_cache_control(lines(headers, "Cache-Control")))


# -- age and freshness (RFC 9111 §4.2) ---------------------------------------------------------------------

def initial_age(headers: Fields, request_time: float, response_time: float) -> float:
    """corrected_initial_age of RFC 9111 §4.2.3: the larger of the apparent age (our clock against Date) and
    the upstream Age corrected by the time the request took.

    The apparent age compares whole seconds: a Date has one-second resolution, so a response received 0.9 s
    into the second its Date names is not 0.9 s old (with `max-age=1` that would halve its lifetime).
    """
    date = parse_http_date(headers.get("Date"), response_time)
    apparent = max(0.0, math.floor(response_time) - date) if date is not None else 0.0
    corrected = (parse_age(headers) or 0) + max(0.0, response_time - request_time)
    return max(apparent, corrected)


def current_age(initial: float, response_time: float, now: float) -> int:
    """RFC 9111 §4.2.3 current_age, as the whole seconds an Age header carries."""
    return int(initial + max(0.0, now - response_time))


def explicit_lifetime(headers: Fields, cc: CacheControl, response_time: float) -> float | None:
    """RFC 9111 §4.2.1 for a shared cache: s-maxage, max-age, else Expires − Date; None without any of them.

    An invalid Expires (e.g. `0`) means "already expired"; so does a second Expires line that disagrees.
    """
    for name in ("s-maxage", "max-age"):
        if (value := cc.seconds(name)) is not None:
            return float(value)
    expires = [] if cc.targeted else lines(headers, "Expires")
    if not expires:
        return None
    when = parse_http_date(expires[0], response_time)
    if when is None or any(parse_http_date(e, response_time) != when for e in expires[1:]):
        return 0.0
    date = parse_http_date(headers.get("Date"), response_time)
    return max(0.0, when - (date if date is not None else response_time))


def heuristic_lifetime(headers: Fields, response_time: float) -> float:
    """RFC 9111 §4.2.2: a tenth of the time since Last-Modified (capped); 0 without a usable Last-Modified."""
    modified = parse_http_date(headers.get("Last-Modified"), response_time)
    if modified is None:
        return 0.0
    date = parse_http_date(headers.get("Date"), response_time)
    since = (date if date is not None else response_time) - modified
    return min(HEURISTIC_MAX_S, max(0.0, since * HEURISTIC_FRACTION))


@dataclass(frozen=True)
class Freshness:
    """How long a stored response may be reused and how stale it may then be served."""

    store: bool  # the response itself allows storing (request-side rules: `storable`)
    fresh_until: float  # response_time + lifetime − initial age (may lie in the past)
    swr_s: float  # stale-while-revalidate window after fresh_until (RFC 5861)
    sie_s: float  # stale-if-error window after fresh_until (RFC 5861)
    no_stale: bool = False  # must-revalidate, proxy-revalidate, no-cache or s-maxage: never served stale
    initial_age: float = 0.0


def freshness(headers: Fields, default_ttl_s: float = 0.0, now: float | None = None, *,
              status: int = 200, request_time: float | None = None,
              targeted: tuple[str, ...] = TARGETED) -> Freshness:
    """Freshness of a response received at `now` (its request sent at `request_time`).

    Without explicit freshness, a heuristically cacheable status gets `default_ttl_s` when that is set (an
    origin configured as a static pack), else the RFC heuristic from Last-Modified.
    """
    now = time.time() if now is None else now
    sent = now if request_time is None else request_time
    cc = response_directives(headers, targeted)
    lifetime = explicit_lifetime(headers, cc, now)
    if lifetime is None and (status in HEURISTIC_STATUSES or "public" in cc):
        lifetime = float(default_ttl_s) if default_ttl_s > 0 else heuristic_lifetime(headers, now)
    if lifetime is None or ("no-cache" in cc and cc.fields("no-cache") is None):
        lifetime = 0.0  # unqualified no-cache: stored, but validated before every reuse
    age = initial_age(headers, sent, now)
    no_stale = bool({"must-revalidate", "proxy-revalidate", "s-maxage"} & cc.directives.keys()) or (
        "no-cache" in cc and cc.fields("no-cache") is None)
    swr = 0 if no_stale else cc.seconds("stale-while-revalidate") or 0
    sie = 0 if no_stale else cc.seconds("stale-if-error") or 0
    return Freshness(store=response_storable(status, cc), fresh_until=now + lifetime - age, swr_s=float(swr),
                     sie_s=float(sie), no_stale=no_stale, initial_age=age)


# -- what may be stored (RFC 9111 §3) ----------------------------------------------------------------------

def response_storable(status: int, cc: CacheControl) -> bool:
    """The response's own side of RFC 9111 §3 for a shared cache (no-store, private, must-understand)."""
    if status < 200 or status in (206, 304):
        return False
    if "must-understand" in cc:
        return status in UNDERSTOOD_STATUSES  # overrides no-store for a status we understand (§5.2.2.3)
    return "no-store" not in cc and not ("private" in cc and cc.fields("private") is None)


def storable(status: int, headers: Fields, request_headers: Fields,
             targeted: tuple[str, ...] = TARGETED) -> bool:
    """Whether a shared cache may store this response to a GET (RFC 9111 §3, §3.5).

    Stricter than the RFC in one place: a response setting a cookie is stored only with explicit freshness
    or `public` (a personalised page without caching headers must not reach the next student).
    """
    cc = response_directives(headers, targeted)
    if not response_storable(status, cc):
        return False
    explicit = explicit_lifetime(headers, cc, time.time()) is not None or "public" in cc
    allows_auth = {"public", "s-maxage", "must-revalidate"} & cc.directives.keys()
    if lines(request_headers, "Authorization") and not allows_auth:
        return False
    if lines(headers, "Set-Cookie") and not explicit:
        return False
    return explicit or status in HEURISTIC_STATUSES


def worth_storing(status: int, headers: Fields, fresh: bool) -> bool:
    """Whether a storable response is worth the SD-card writes: it is fresh, or has a validator to revalidate
    it with, or it is a 200 (kept, however stale, to answer when the origin cannot be reached)."""
    return fresh or status == 200 or "ETag" in headers or "Last-Modified" in headers


def stored_fields(headers: Fields, targeted: tuple[str, ...] = TARGETED) -> list[tuple[str, str]]:
    """The header fields kept with a stored response: end-to-end ones, without those a qualified
    `no-cache="..."` or `private="..."` names (RFC 9111 §3.1, §5.2.2.4, §5.2.2.7), without Age and
    Content-Length (the cache computes both), and with a Date if the origin sent none (RFC 9110 §6.6.1)."""
    cc = response_directives(headers, targeted)
    drop = {"age", "content-length", *(cc.fields("no-cache") or ()), *(cc.fields("private") or ())}
    kept = [(k, v) for k, v in end_to_end(headers) if k.lower() not in drop]
    if not any(k.lower() == "date" for k, _ in kept):
        kept.append(("Date", http_date(time.time())))
    return kept


def updated_fields(stored: list[tuple[str, str]], new: Fields) -> list[tuple[str, str]]:
    """A stored response's fields after a 304 (RFC 9111 §3.2, §4.3.4): every end-to-end field of the 304
    replaces the stored one of that name, except Content-Length (the stored body is what it describes)."""
    fresh = [(k, v) for k, v in end_to_end(new) if k.lower() not in ("content-length", "age")]
    replaced = {k.lower() for k, _ in fresh}
    return [(k, v) for k, v in stored if k.lower() not in replaced] + fresh


def revalidation_matches(stored_etag: str | None, new: Fields) -> bool:
    """RFC 9111 §4.3.4: a 304 carrying a strong validator updates only the response with that validator."""
    etag = new.get("ETag")
    return etag is None or not is_strong(etag) or etag == stored_etag


# -- Vary (RFC 9111 §4.1) ----------------------------------------------------------------------------------

def vary_names(headers: Fields) -> tuple[str, ...] | None:
    """The request fields a response varies on (lowercased, sorted); None for `Vary: *` (never reusable)."""
    names = {m.lower() for m in list_members(headers, "Vary")}
    if "*" in names:
        return None
    return tuple(sorted(names))


def _normalised(name: str, request_headers: Fields) -> str:
    """A selecting field's value as compared: lines combined, list members trimmed (RFC 9111 §4.1 allows
    normalising); order and case ignored where they carry no meaning (Accept-*); absent ≠ empty."""
    if not lines(request_headers, name):
        return "\x00"
    members = list_members(request_headers, name)
    if name in _UNORDERED:
        members = sorted(re.sub(r"\s*;\s*", ";", m).lower() for m in members)
    return ",".join(members)


def secondary_key(names: tuple[str, ...], request_headers: Fields) -> str:
    """The secondary cache key of a request for a response varying on `names` (a digest: bounded length)."""
    text = "\n".join(f"{n}:{_normalised(n, request_headers)}" for n in names)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


# -- requests (RFC 9111 §5.2.1, §5.4) and invalidation (§4.4) -----------------------------------------------

def request_directives(headers: Fields) -> Directives:
    """The request's cache directives; `Pragma: no-cache` counts only without Cache-Control (§5.4)."""
    found = lines(headers, "Cache-Control")
    if found:
        return parse_cache_control(found)
    return {"no-cache": None} if "no-cache" in {m.lower() for m in list_members(headers, "Pragma")} else {}


def satisfies(req: Directives, fresh_until: float, age: int, now: float) -> bool:
    """Whether a stored response that is `age` seconds old may answer a request without validation."""
    if "no-cache" in req:
        return False
    max_age = delta_seconds(req.get("max-age"))
    if max_age is not None and age > max_age:
        return False
    min_fresh = delta_seconds(req.get("min-fresh"))
    if min_fresh is not None and fresh_until - now < min_fresh:
        return False
    if now < fresh_until:
        return True
    if "max-stale" in req:
        limit = delta_seconds(req["max-stale"])
        return limit is None or now - fresh_until <= limit
    return False


def invalidates(method: str, status: int) -> bool:
    """RFC 9111 §4.4: a non-error answer to an unsafe (or unknown) method invalidates the target URI."""
    return method.upper() not in SAFE_METHODS and 200 <= status < 400


# -- ranges (RFC 9110 §14) ---------------------------------------------------------------------------------

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


# -- validators and conditionals (RFC 9110 §8.8, §13) ------------------------------------------------------

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


def check_conditionals(headers: Mapping[str, str], etag: str | None, last_modified: float | None,
                       date: float | None = None) -> int | None:
    """The status a GET/HEAD must answer instead of the content (304 or 412), or None to proceed.

    Evaluation order follows RFC 9110 §13.2.2: If-Match, If-Unmodified-Since, If-None-Match,
    If-Modified-Since (the date checks only when the matching ETag header is absent). Without a
    Last-Modified, If-Modified-Since is judged against the stored response's Date (RFC 9111 §4.3.2).
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
    modified = last_modified if last_modified is not None else date
    if ims is not None and modified is not None and int(modified) <= ims:
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
