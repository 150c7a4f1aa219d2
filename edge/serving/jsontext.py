"""JSON in and out of every HTTP service, strictly: what comes in and goes out is RFC 8259 JSON.

Python's json accepts and emits NaN and Infinity, which are not JSON (browsers' JSON.parse refuses them),
raises RecursionError on deeply nested input and refuses integers over 4,300 digits with a ValueError:
`loads` turns every one of those into a ValueError naming the problem, `dumps` refuses non-finite numbers.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH_HINT = "nested too deeply"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes) -> Any:
    """Parse JSON text; ValueError (with a reason fit for an error message) when it is not strict JSON."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"invalid JSON: {MAX_DEPTH_HINT}") from None
    except UnicodeDecodeError:
        raise ValueError("invalid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except ValueError as e:  # NaN/Infinity, an integer over the digit limit
        raise ValueError(f"invalid JSON: {e}") from None


def dumps(obj: Any, **kwargs: Any) -> str:
    """JSON text; ValueError for NaN or infinite numbers (they would not be JSON)."""
    return json.dumps(obj, allow_nan=False, **kwargs)
