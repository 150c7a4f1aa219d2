"""Pieces every OpenAPI 3.1 document of the unit is built from (the rotation API, the mastery API, the fleet
collector): references, JSON bodies, error responses in the one shape, and the schema of a name people see.
"""

from __future__ import annotations

from typing import Any

from edge.limits import NAME_MAX

# A name the pages can show: some visible text, no control or text-direction characters (edge.limits).
SHOWN = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"


def ref(name: str) -> dict[str, str]:
    """A reference to a schema of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response (or request body) of JSON matching `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def err(name: str) -> dict[str, str]:
    """A reference to one of the document's error responses (each is the one JSON error shape)."""
    return {"$ref": f"#/components/responses/{name}"}


def error_responses(descriptions: dict[str, str]) -> dict[str, Any]:
    """Named error responses, all of the one shape (component schema "Error")."""
    return {name: json_body(ref("Error"), text) for name, text in descriptions.items()}


def name_schema(max_len: int = NAME_MAX, description: str = "") -> dict[str, Any]:
    """A name: 1..max_len characters with some visible text and nothing that breaks a page."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": max_len,
                              "allOf": [{"pattern": "\\S"}, {"pattern": SHOWN}]}
    if description:
        schema["description"] = description
    return schema
