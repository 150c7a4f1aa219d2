"""The string formats xAPI 1.0.3 names (IRI, UUID, RFC 5646 language tag, ISO 8601 timestamp and duration,
media type, e-mail IRI, hashes), each as one compiled pattern and a predicate.

Patterns, not parsers: the checks are on the intake's hot path, and a pattern that rejects what the spec
rejects is all the LRS needs (timestamps are parsed afterwards, once, for their value).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from decimal import Decimal

from edge.limits import EVENT_TIME_MAX_S

# scheme ":" and a non-empty rest without whitespace or the characters RFC 3987 excludes from IRIs
_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 5646 section 2.1 (well-formed tags), case-insensitive
_GRANDFATHERED = (
    "en-GB-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn|i-tao|i-tay|"
    "i-tsu|sgn-BE-FR|sgn-BE-NL|sgn-CH-DE|art-lojban|cel-gaulish|no-bok|no-nyn|zh-guoyu|zh-hakka|zh-min|"
    "zh-min-nan|zh-xiang"
)
_LANG = re.compile(
    r"(?:(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})"  # language (+ extlang)
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"  # variants
    r"(?:-[a-wyz0-9](?:-[a-z0-9]{2,8})+)*"  # extensions
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"  # private use
    r"|x(?:-[a-z0-9]{1,8})+"
    rf"|{_GRANDFATHERED})",
    re.IGNORECASE,
)
_NUM = r"[0-9]+(?:[.,][0-9]+)?"
_DURATION = re.compile(
    rf"P(?:(?=[0-9]|T[0-9])(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}D)?(?:T(?=[0-9])(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?"
    rf"|{_NUM}W)"
)
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_UNKNOWN_OFFSET = ("-00", "-0000", "-00:00")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(?:\s*;.*)?")
_MBOX = re.compile(r"mailto:[^@\s]+@[^@\s]+")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_SHA2 = re.compile(r"[0-9a-fA-F]{56}|[0-9a-fA-F]{64}|[0-9a-fA-F]{96}|[0-9a-fA-F]{128}")
_VERSION = re.compile(r"1\.0(?:\.[0-9]+)?")


@functools.lru_cache(maxsize=8192)  # verbs, activities, homePages and extension keys repeat across statements
def is_iri(s: str) -> bool:
    return _IRI.fullmatch(s) is not None


def is_uuid(s: str) -> bool:
    return _UUID.fullmatch(s) is not None


@functools.lru_cache(maxsize=1024)
def is_language_tag(s: str) -> bool:
    return _LANG.fullmatch(s) is not None


def is_duration(s: str) -> bool:
    return _DURATION.fullmatch(s) is not None


def is_media_type(s: str) -> bool:
    return _MEDIA_TYPE.fullmatch(s) is not None


def is_mbox(s: str) -> bool:
    return _MBOX.fullmatch(s) is not None


def is_sha1(s: str) -> bool:
    return _SHA1.fullmatch(s) is not None


def is_sha2(s: str) -> bool:
    return _SHA2.fullmatch(s) is not None


def is_version(s: str) -> bool:
    """A 1.0.x version ("1.0" itself included): what this LRS accepts in statements and headers."""
    return _VERSION.fullmatch(s) is not None


@functools.lru_cache(maxsize=4096)  # a statement's timestamp is read by validation, then by evidence
def parse_timestamp(s: str) -> datetime | None:
    """An ISO 8601 date-time as a UTC datetime, None when it is not one (no offset means UTC).

    The pattern admits the extended format only; xAPI forbids the "unknown local offset" forms -00, -0000
    and -00:00 (RFC 3339 section 4.3). The value itself is read by datetime.fromisoformat (C, and fast).
    """
    if _TIMESTAMP.fullmatch(s) is None or s.endswith(_UNKNOWN_OFFSET):
        return None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def timestamp_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact: no float rounding)."""
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_RE = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_event_time(text: str) -> Decimal:
    """A compact-evidence time, epoch seconds (`1714557600`, `1714557600.25`) or ISO 8601 (UTC if no offset),
    as exact epoch seconds.

    Decimal keeps the (timestamp, event_id) order exact: no float rounding can swap two close events.
    """
    t = text.strip()
    if _EPOCH_RE.fullmatch(t):
        value = Decimal(t)
    else:
        try:
            dt = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"timestamp must be ISO 8601 or epoch seconds, got {text[:64]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        value = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)
    if not 0 <= value <= EVENT_TIME_MAX_S:
        raise ValueError(f"timestamp must be ISO 8601 or epoch seconds from 1970 to 9999, got {text[:64]!r}")
    return value
