"""JSON in and out of every HTTP service, strictly: what comes in and goes out is RFC 8259 JSON.

Python's json accepts and emits NaN and Infinity, which are not JSON (browsers' JSON.parse refuses them),
raises RecursionError on deeply nested input (or later, when the value is encoded again deeper in the stack)
and refuses integers over 4,300 digits with a ValueError: `loads` turns every one of those into a ValueError
naming the problem and refuses nesting deeper than edge.limits.JSON_DEPTH_MAX. JSON may also escape a lone
surrogate ("\ud800"), which no UTF-8 store, page or LRS can hold (SQLite and aiohttp raise on it later, as a
500): `loads` refuses that too. `dumps` refuses non-finite numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge.limits import JSON_DEPTH_MAX

MAX_DEPTH_HINT = "nested too deeply"
# a \uD800-\uDFFF escape: only texts with one pay for the check that the value is valid Unicode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_B = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes, max_depth: int = JSON_DEPTH_MAX) -> Any:
    """Parse JSON text; ValueError (with a reason fit for an error message) when it is not strict JSON or
    nests arrays and objects more than `max_depth` deep."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"invalid JSON: {MAX_DEPTH_HINT}") from None
    except UnicodeDecodeError:
        raise ValueError("invalid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except ValueError as e:  # NaN/Infinity, an integer over the digit limit
        raise ValueError(f"invalid JSON: {e}") from None
    # a value cannot nest deeper than it has brackets: most bodies skip the walk
    if (data.count("[") + data.count("{") if isinstance(data, str) else data.count(b"[") + data.count(b"{")) \
            > max_depth and depth_over(value, max_depth):
        raise ValueError(f"invalid JSON: {MAX_DEPTH_HINT} (arrays and objects nest at most {max_depth} deep)")
    if (_SURROGATE_ESCAPE.search(data) if isinstance(data, str) else _SURROGATE_ESCAPE_B.search(data)):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("invalid JSON: a lone surrogate escape (not valid Unicode text)") from None
    return value


def depth_over(value: Any, limit: int) -> bool:
    """Whether arrays and objects in `value` nest more than `limit` deep (iteratively: no recursion)."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def dumps(obj: Any, **kwargs: Any) -> str:
    """JSON text; ValueError for NaN or infinite numbers (they would not be JSON)."""
    return json.dumps(obj, allow_nan=False, **kwargs)
