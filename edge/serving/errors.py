"""The one JSON error shape of every HTTP service (pages API, lesson cache, mastery, fleet collector).

    {"error": "<what is wrong, for people>", "status": 422, "key": "plan.name", "reason": "must not be empty"}

`error` and `status` are always there; `key` (the offending field, parameter or header) and `reason` (the
problem without the key) when one input is to blame. The README and every OpenAPI document describe it once
(`ERROR_SCHEMA`).
"""

from __future__ import annotations

from typing import Any

from edge.exc import RequestError

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "status"], "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "what is wrong, for people"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status again"},
        "key": {"type": "string", "description": "the offending field, parameter or header, when one is to blame"},
        "reason": {"type": "string", "description": "why that key is wrong, without the key"},
    },
}


def error_body(status: int, message: str, *, key: str | None = None, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "status": status}
    if key is not None:
        body["key"] = key
    if reason is not None:
        body["reason"] = reason
    return body


def request_error_body(e: RequestError) -> dict[str, Any]:
    return error_body(e.status, e.message, key=e.key, reason=e.reason)
