"""Parsing HTTP field values the way RFC 9110/9111 (and RFC 8941 for targeted cache control) define them.

Pure functions on header values, strict where the RFCs are strict: an HTTP-date that is not exactly one of
the three formats is invalid, a Cache-Control member with a space before `=` is not a directive, an Age
that is not a non-negative integer is ignored. content_cache.http makes the caching decisions from these.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Mapping
from email.utils import formatdate

from multidict import MultiMapping

DELTA_MAX = 2**31  # RFC 9111 §1.2.2: delta-seconds beyond this are taken as 2^31

# RFC 9110 §7.6.1 and RFC 9112: fields that describe one connection, never stored or forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "trailer",
    "proxy-authenticate", "proxy-authorization", "proxy-authentication-info",
})


# Header fields: a plain mapping, or a multidict (aiohttp's CIMultiDict and its proxy) that keeps repeated lines.
Fields = Mapping[str, str]


def lines(headers: Fields, name: str) -> list[str]:
    """Every field line of `name` (a plain mapping has at most one)."""
    if isinstance(headers, MultiMapping):
        return list(headers.getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


# -- lists (RFC 9110 §5.6.1) ------------------------------------------------------------------------------

def split_list(value: str) -> list[str]:
    """The members of a comma-separated list, trimmed, empty ones dropped; commas inside quotes kept."""
    out: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, c in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return [m.strip(" \t") for m in out if m.strip(" \t")]


def list_members(headers: Fields, name: str) -> list[str]:
    """The members of every line of a list-based field, as if the lines were one (RFC 9110 §5.3)."""
    return [m for line in lines(headers, name) for m in split_list(line)]


def end_to_end(headers: Fields) -> list[tuple[str, str]]:
    """The fields a cache may store and forward: without hop-by-hop fields and those named in Connection
    (RFC 9110 §7.6.1), in their order, repeated lines kept."""
    named = {m.lower() for m in list_members(headers, "Connection")}
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in named]


# -- HTTP-date (RFC 9110 §5.6.7) --------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), start=1)}
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_DAY_L = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MON = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
# ABNF literals are case-insensitive (RFC 5234 §2.3): "THU", "AUG" and "gMT" are valid, "UTC" is not.
_IMF = re.compile(rf"{_DAY}, (\d{{2}}) {_MON} (\d{{4}}) {_TIME} gmt", re.IGNORECASE)
_RFC850 = re.compile(rf"{_DAY_L}, (\d{{2}})-{_MON}-(\d{{2}}) {_TIME} gmt", re.IGNORECASE)
_ASCTIME = re.compile(rf"{_DAY} {_MON} ( \d|\d{{2}}) {_TIME} (\d{{4}})", re.IGNORECASE)


def _timestamp(year: int, month: str, day: int, hh: str, mm: str, ss: str) -> float | None:
    h, m, s = int(hh), int(mm), int(ss)
    if not (1 <= day <= calendar.monthrange(year, _MONTHS[month.lower()])[1] and h < 24 and m < 60 and s <= 60):
        return None
    return float(calendar.timegm((year, _MONTHS[month.lower()], day, h, m, min(s, 59))))


def parse_http_date(value: str | None, now: float | None = None) -> float | None:
    """Unix timestamp of an HTTP-date in any of its three formats, or None when absent or invalid."""
    if not value:
        return None
    value = value.strip(" \t")
    if m := _IMF.fullmatch(value):
        return _timestamp(int(m[3]), m[2], int(m[1]), m[4], m[5], m[6])
    if m := _RFC850.fullmatch(value):
        # A two-digit year more than 50 years ahead is the most recent past year with those digits.
        this_year = time.gmtime(time.time() if now is None else now).tm_year
        year = this_year // 100 * 100 + int(m[3])
        if year > this_year + 50:
            year -= 100
        return _timestamp(year, m[2], int(m[1]), m[4], m[5], m[6])
    if m := _ASCTIME.fullmatch(value):
        return _timestamp(int(m[6]), m[1], int(m[2]), m[3], m[4], m[5])
    return None


def http_date(ts: float) -> str:
    """An IMF-fixdate for a Unix timestamp."""
    return formatdate(ts, usegmt=True)


# -- Cache-Control (RFC 9111 §5.2) and Age (§5.1) ---------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OWS = re.compile(r"[ \t]*")

Directives = dict[str, str | None]


def _member(text: str, pos: int) -> tuple[tuple[str, str | None] | None, int]:
    """One `token [ "=" ( token / quoted-string ) ]` member at `pos`: (name, argument) or None if it is not
    one; and the position after the member's comma."""
    pos = _OWS.match(text, pos).end()  # type: ignore[union-attr]
    name = _TOKEN.match(text, pos)
    parsed: tuple[str, str | None] | None = None
    if name is not None:
        pos = name.end()
        arg: str | None = None
        ok = True
        if text.startswith("=", pos):
            if (tok := _TOKEN.match(text, pos + 1)) is not None:
                arg, pos = tok[0], tok.end()
            elif (quo := _QUOTED.match(text, pos + 1)) is not None:
                arg, pos = re.sub(r"\\(.)", r"\1", quo[1]), quo.end()
            else:
                ok = False
        pos = _OWS.match(text, pos).end()  # type: ignore[union-attr]
        if ok and (pos == len(text) or text[pos] == ","):
            parsed = (name[0].lower(), arg)
    if parsed is None:  # not a directive (e.g. "max-age =1"): skip to the next comma outside quotes
        quoted = False
        while pos < len(text):
            c = text[pos]
            if c == "\\" and quoted:
                pos += 1
            elif c == '"':
                quoted = not quoted
            elif c == "," and not quoted:
                break
            pos += 1
    return parsed, pos + 1


def parse_cache_control(values: Iterable[str]) -> Directives:
    """Directives of one or more Cache-Control lines; names lowercased, arguments unquoted.

    The first occurrence of a directive wins (RFC 9111 §4.2.1); a member that is not a well-formed directive
    (a space around `=`, a bad quoted string) is ignored, so `max-age =3600` is no max-age at all.
    """
    out: Directives = {}
    for text in values:
        pos = 0
        while pos < len(text):
            parsed, pos = _member(text, pos)
            if parsed is not None and parsed[0] not in out:
                out[parsed[0]] = parsed[1]
    return out


def delta_seconds(arg: str | None) -> int | None:
    """A delta-seconds argument (1*DIGIT), capped at 2^31; None when absent or malformed (`-1`, `1.5`)."""
    if arg is None or not arg.isascii() or not arg.isdigit():
        return None
    return min(int(arg), DELTA_MAX)


def field_names(arg: str | None) -> list[str]:
    """The field names of a qualified `no-cache="a, b"` or `private="a"`, lowercased."""
    return [n.lower() for n in split_list(arg or "")]


def parse_age(headers: Fields) -> int | None:
    """The Age of a response: the first member of the first line if it is a non-negative integer, else
    None (RFC 9111 §5.1: `Age: 7200, 0` is 7200; `abc`, `-1` and `1.5` are ignored)."""
    found = lines(headers, "Age")
    if not found:
        return None
    members = split_list(found[0])
    return delta_seconds(members[0]) if members else None


# -- Structured Field dictionaries (RFC 8941 §4.2.2), for CDN-Cache-Control (RFC 9213) --------------------

_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_INT = re.compile(r"-?\d{1,15}(?!\d)(?!\.)")
_SF_DEC = re.compile(r"-?\d{1,12}\.\d{1,3}(?!\d)")
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
SfValue = bool | int | float | str | list["SfValue"]


def _sf_bare(text: str, pos: int) -> tuple[SfValue, int] | None:
    for pattern, kind in ((_SF_DEC, float), (_SF_INT, int)):
        if m := pattern.match(text, pos):
            return kind(m[0]), m.end()
    if m := _SF_STRING.match(text, pos):
        return re.sub(r"\\(.)", r"\1", m[1]), m.end()
    if m := _SF_TOKEN.match(text, pos):
        return m[0], m.end()
    if m := _SF_BYTES.match(text, pos):
        return m[0], m.end()
    if text.startswith(("?0", "?1"), pos):
        return text[pos + 1] == "1", pos + 2
    return None


def _sf_params(text: str, pos: int) -> int | None:
    """Skip the parameters after an item (they carry nothing a cache uses); None when malformed."""
    while text.startswith(";", pos):
        pos = len(text) - len(text[pos + 1:].lstrip(" "))
        key = _SF_KEY.match(text, pos)
        if key is None:
            return None
        pos = key.end()
        if text.startswith("=", pos):
            bare = _sf_bare(text, pos + 1)
            if bare is None:
                return None
            pos = bare[1]
    return pos


def _sf_member_value(text: str, pos: int) -> tuple[SfValue, int] | None:
    if not text.startswith("(", pos):
        bare = _sf_bare(text, pos)
        if bare is None:
            return None
        end = _sf_params(text, bare[1])
        return None if end is None else (bare[0], end)
    items: list[SfValue] = []
    pos += 1
    while True:
        pos = len(text) - len(text[pos:].lstrip(" "))
        if text.startswith(")", pos):
            end = _sf_params(text, pos + 1)
            return None if end is None else (items, end)
        bare = _sf_bare(text, pos)
        if bare is None:
            return None
        end = _sf_params(text, bare[1])
        if end is None or (end < len(text) and text[end] not in " )"):
            return None
        items.append(bare[0])
        pos = end


def parse_sf_dictionary(values: Iterable[str]) -> dict[str, SfValue] | None:
    """An RFC 8941 dictionary from one or more field lines; None when any part is malformed (the whole
    field is then ignored, as RFC 9213 requires of an invalid targeted field)."""
    text = ",".join(values).strip(" ")
    out: dict[str, SfValue] = {}
    pos = 0
    while pos < len(text):
        key = _SF_KEY.match(text, pos)
        if key is None:
            return None
        pos = key.end()
        value: SfValue = True
        if text.startswith("=", pos):
            parsed = _sf_member_value(text, pos + 1)
            if parsed is None:
                return None
            value, pos = parsed
        else:
            end = _sf_params(text, pos)
            if end is None:
                return None
            pos = end
        out[key[0]] = value
        pos = len(text) - len(text[pos:].lstrip(" \t"))
        if pos == len(text):
            break
        if text[pos] != ",":
            return None
        pos = len(text) - len(text[pos + 1:].lstrip(" \t"))
        if pos == len(text):
            return None  # a trailing comma
    return out
