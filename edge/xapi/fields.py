"""Checks for the parts every xAPI object is made of: objects with known keys, strings, IRIs, UUIDs,
language maps and extensions. Each raises StatementError naming the JSON path of the bad value.

xAPI 1.0.3 refuses null anywhere but inside extension values, and unknown properties everywhere but in
extensions (the ADL suite checks both): `keys` does both for every object it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from edge.exc import StatementError
from edge.xapi.formats import is_iri, is_language_tag, is_uuid

MAX_STRING = 64 * 1024  # characters in any one string a statement carries (the body is bounded as well)


def obj(value: Any, field: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise StatementError(field, "must be a JSON object")
    return value


def keys(value: Any, field: str, allowed: frozenset[str], required: Collection[str] = ()) -> dict[str, Any]:
    """`value` as an object whose keys are all `allowed`, with every `required` one, and no null value."""
    d = obj(value, field)
    if not allowed.issuperset(d) or None in d.values():  # (set and C-level scans: the common case is fast)
        for k, v in d.items():
            if k not in allowed:
                raise StatementError(f"{field}.{k}", "is not a property here (xAPI 1.0.3)")
            if v is None:
                raise StatementError(f"{field}.{k}", "must not be null")
    for k in required:
        if k not in d:
            raise StatementError(f"{field}.{k}", "is required")
    return d


def string(value: Any, field: str, *, empty: bool = True) -> str:
    if type(value) is not str:
        raise StatementError(field, "must be a string")
    if not empty and not value:
        raise StatementError(field, "must not be empty")
    if len(value) > MAX_STRING:
        raise StatementError(field, f"is longer than {MAX_STRING} characters")
    return value


def iri(value: Any, field: str) -> str:
    s = string(value, field)
    if not is_iri(s):
        raise StatementError(field, "must be an absolute IRI (scheme:...)")
    return s


def uuid(value: Any, field: str) -> str:
    if type(value) is not str or not is_uuid(value):
        raise StatementError(field, "must be a UUID (8-4-4-4-12 hex digits)")
    return value


def boolean(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise StatementError(field, "must be true or false")
    return value


def number(value: Any, field: str) -> float:
    if type(value) not in (int, float):
        raise StatementError(field, "must be a number")
    return float(value)


def language_map(value: Any, field: str) -> Mapping[str, str]:
    d = obj(value, field)
    for tag, text in d.items():
        if not is_language_tag(tag):
            raise StatementError(f"{field}.{tag}", "is not an RFC 5646 language tag")
        string(text, f"{field}.{tag}")
    return d


def extensions(value: Any, field: str) -> None:
    """Keys are IRIs; values are any JSON (null included)."""
    for k in obj(value, field):
        if not is_iri(k):
            raise StatementError(f"{field}.{k}", "extension keys must be absolute IRIs")


def array(value: Any, field: str) -> list[Any]:
    if type(value) is not list:
        raise StatementError(field, "must be an array")
    return value


def each(value: Any, field: str, limit: int, what: str, check: Callable[[Any, str], object]) -> list[Any]:
    """An array of at most `limit` `what`, each passing `check` (named by its index)."""
    items = array(value, field)
    if len(items) > limit:
        raise StatementError(field, f"at most {limit} {what}")
    for i, item in enumerate(items):
        check(item, f"{field}[{i}]")
    return items


Check = Callable[[Any, str], object]


def each_present(d: Mapping[str, Any], field: str, checks: Mapping[str, Check]) -> None:
    """Run `checks[k]` on every optional property `k` that `d` has (an absent one is fine), in the table's order."""
    for k, check in checks.items():
        if k in d:
            check(d[k], f"{field}.{k}")
