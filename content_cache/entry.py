"""What the cache knows about one stored response: `Entry` (status, header fields, freshness, Vary) and the
index records that hold it, including those an older version of the cache wrote.

Schema 2 stores every end-to-end header field of the response; schema 1 (before shared-cache semantics)
kept five of them and had no status. A schema-1 record is read as a 200 with those five fields, so an
upgrade keeps the cache; a record neither version can read is treated as absent and `check` drops it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from content_cache.http import current_age, http_date, parse_http_date

SCHEMA = 2
VARIANT_SEP = "\n"  # store key of a Vary variant: <url key>\n<secondary key>; paths never hold a newline
_V1_FIELDS = (("etag", "ETag"), ("last_modified", "Last-Modified"), ("content_type", "Content-Type"),
              ("content_encoding", "Content-Encoding"), ("cache_control", "Cache-Control"))

Header = tuple[str, str]


def url_of(store_key: str) -> str:
    """The URL key of a store key (a variant's, or the URL's own)."""
    return store_key.split(VARIANT_SEP, 1)[0]


def secondary_part(store_key: str) -> str:
    """The secondary key of a variant's store key ("" for a URL's own entry)."""
    return store_key.partition(VARIANT_SEP)[2]


@dataclass
class Entry:
    """Metadata of one cached response (the body lives in `<dir>/bodies/<body>`)."""

    key: str  # store key: the URL key (origin/path?query), plus VARIANT_SEP + secondary key for a variant
    url: str
    origin: str
    body: str
    size: int
    sha256: str
    fetched_at: float  # response_time of RFC 9111 §4.2.3 (of the last validation, after a 304)
    fresh_until: float
    swr_s: float = 0.0
    sie_s: float = 0.0
    status: int = 200
    headers: list[Header] = field(default_factory=list)  # stored fields, in order, repeats kept
    initial_age: float = 0.0  # corrected_initial_age (RFC 9111 §4.2.3)
    no_stale: bool = False  # must-revalidate & co.: never served stale, not even offline
    vary: tuple[str, ...] = ()  # the request fields this variant was selected by (lowercased)
    pinned: bool = False
    last_access: float = field(default_factory=time.time)

    @property
    def primary(self) -> str:
        """The URL key: the same for every variant of a resource."""
        return url_of(self.key)

    def header(self, name: str) -> str | None:
        """The first stored line of a header field (None if absent)."""
        return self._first.get(name.lower())

    @cached_property
    def _first(self) -> dict[str, str]:
        first: dict[str, str] = {}
        for k, v in self.headers:
            first.setdefault(k.lower(), v)
        return first

    @property
    def etag(self) -> str | None:
        return self.header("ETag")

    @property
    def last_modified(self) -> str | None:
        return self.header("Last-Modified")

    def modified_at(self) -> float | None:
        return parse_http_date(self.last_modified)

    def date(self) -> float | None:
        return parse_http_date(self.header("Date"))

    def age(self, now: float) -> int:
        """The Age to send with it now (RFC 9111 §4.2.3)."""
        return current_age(self.initial_age, self.fetched_at, now)

    def set_headers(self, headers: list[Header]) -> None:
        """Replace the stored fields (after a 304), dropping what was derived from the old ones."""
        self.headers = headers
        self.__dict__.pop("_first", None)

    def to_raw(self) -> dict[str, Any]:
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        raw["headers"] = [list(h) for h in self.headers]
        raw["vary"] = list(self.vary)
        raw["schema"] = SCHEMA
        return raw


def _v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record as schema 2: a 200 with the fields it kept; `sie_s` 0 meant must-revalidate & co.,
    infinity meant "serve stale whenever upstream fails" (now an origin setting, `offline_stale`)."""
    out = {k: v for k, v in raw.items() if k not in {name for name, _ in _V1_FIELDS}}
    headers = [[header, raw[name]] for name, header in _V1_FIELDS if isinstance(raw.get(name), str)]
    headers.append(["Date", http_date(float(raw.get("fetched_at", 0.0)))])
    sie = raw.get("sie_s", math.inf)
    out.update(headers=headers, status=200, initial_age=0.0, no_stale=sie == 0, vary=[],
               sie_s=0.0 if not isinstance(sie, int | float) or math.isinf(sie) else float(sie))
    return out


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Entry))


def entry_from_raw(raw: Any) -> Entry | None:
    """An Entry from an index record (either schema); None for a record that is not a readable entry."""
    if not isinstance(raw, dict) or raw.get("kind") == "vary":
        return None
    if "schema" not in raw:
        raw = _v1(raw)
    elif raw.get("schema") != SCHEMA:
        return None  # written by a newer version: leave it alone, treat it as absent
    try:
        entry = Entry(**{k: v for k, v in raw.items() if k in _FIELD_NAMES})
        entry.headers = [(str(k), str(v)) for k, v in entry.headers]
        entry.vary = tuple(str(n) for n in entry.vary)
        if not (isinstance(entry.key, str) and isinstance(entry.body, str) and isinstance(entry.size, int)
                and isinstance(entry.status, int)):
            return None
    except (TypeError, ValueError):
        return None
    return entry


@dataclass
class VarySet:
    """The index record at a URL key whose responses vary: which request fields select, which variants exist."""

    names: tuple[str, ...]
    keys: set[str] = field(default_factory=set)

    def to_raw(self) -> dict[str, Any]:
        return {"kind": "vary", "names": list(self.names), "keys": sorted(self.keys), "schema": SCHEMA}


def vary_from_raw(raw: Any) -> VarySet | None:
    if not isinstance(raw, dict) or raw.get("kind") != "vary":
        return None
    names, keys = raw.get("names"), raw.get("keys")
    if not isinstance(names, list) or not isinstance(keys, list):
        return None
    return VarySet(tuple(str(n) for n in names), {str(k) for k in keys})
