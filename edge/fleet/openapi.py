"""OpenAPI 3.1 document of the collector's JSON API (schemas are JSON Schema 2020-12; tests validate by it)."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.fleet.heartbeats import (
    MAX_FAULT,
    MAX_FAULTS,
    MAX_HOST,
    MAX_NAME,
    MAX_NUMBER,
    MAX_SHORT,
    SORT_KEYS,
    STATUSES,
    UNIT_ID,
)
from edge.serving.errors import ERROR_SCHEMA
from edge.serving.openapi import err, json_body, ref

NULL_NUM = {"type": ["number", "null"], "minimum": 0, "maximum": MAX_NUMBER}
NULL_INT = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_NUMBER}
NULL_STR = {"type": ["string", "null"]}
UNIT_ID_SCHEMA = {"type": "string", "pattern": f"^{UNIT_ID.pattern}$"}
PORTS = {"type": "object", "additionalProperties": False,
         "properties": {k: {"type": "integer", "minimum": 1, "maximum": 65535} for k in ("web", "cache", "mastery")}}


SCHEMAS: dict[str, Any] = {
    "Error": ERROR_SCHEMA,
    "Heartbeat": {
        "description": "What a unit POSTs every 5 minutes (edge/sync/heartbeat.py). Unknown keys are ignored.",
        "type": "object", "required": ["unit", "version"],
        "properties": {
            "unit": {"type": "object", "required": ["id", "room", "school"], "properties": {
                "id": {**UNIT_ID_SCHEMA,
                       "description": "stable per unit: an app-specific hash of /etc/machine-id"},
                "room": {"type": "string", "maxLength": MAX_NAME},
                "school": {"type": "string", "maxLength": MAX_NAME,
                           "description": "must be the school whose token authorises the request"},
                "hostname": {"type": "string", "maxLength": MAX_HOST}}},
            "version": {"type": "string", "maxLength": MAX_SHORT},
            "uptime_s": NULL_NUM, "host_uptime_s": NULL_NUM, "cache_bytes": NULL_INT,
            "backlog": {**NULL_INT, "description": "statements not yet delivered to the district LRS"},
            "oldest_unsent_age_s": {**NULL_NUM, "description": "age of the oldest undelivered statement"},
            "disk_free_bytes": NULL_INT, "disk_total_bytes": NULL_INT,
            "clock_synced": {"type": ["boolean", "null"], "description": "the kernel's NTP-synchronised flag"},
            "faults": {"type": "array", "maxItems": MAX_FAULTS,
                       "items": {"type": "string", "maxLength": MAX_FAULT}},
            "ports": PORTS,
            "pin_factory": {"type": "string", "maxLength": MAX_SHORT},
            "kernel": {"type": "string", "maxLength": MAX_SHORT},
            "sent_at": {"type": "string", "description": "the unit's UTC time, ISO 8601"},
        },
    },
    "Unit": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "school", "room", "hostname", "version", "address", "status", "last_seen",
                     "last_seen_age_s", "first_seen", "heartbeats", "backlog", "oldest_unsent_age_s", "faults",
                     "disk_free_bytes", "disk_total_bytes", "clock_synced", "clock_offset_s", "uptime_s", "kernel",
                     "pin_factory", "ports"],
        "properties": {
            "id": {"type": "string"}, "school": {"type": "string"}, "room": {"type": "string"},
            "hostname": {"type": "string"}, "version": {"type": "string"},
            "address": {**NULL_STR, "description": "the address its last heartbeat came from"},
            "status": {"enum": ["online", "offline"],
                       "description": "offline: silent for more than fleet.offline_minutes"},
            "last_seen": {"type": "string", "format": "date-time"},
            "last_seen_age_s": {"type": "number", "minimum": 0},
            "first_seen": {"type": "string", "format": "date-time"},
            "heartbeats": {"type": "integer", "minimum": 1},
            "backlog": NULL_INT, "oldest_unsent_age_s": NULL_NUM,
            "faults": {"type": "array", "items": {"type": "string"}},
            "disk_free_bytes": NULL_INT, "disk_total_bytes": NULL_INT,
            "clock_synced": {"type": ["boolean", "null"]},
            "clock_offset_s": {"type": ["number", "null"],
                               "description": "the unit's clock minus the collector's when it last reported"},
            "uptime_s": NULL_NUM, "kernel": NULL_STR, "pin_factory": NULL_STR, "ports": PORTS,
        },
    },
    "Units": {"type": "object", "required": ["generated_at", "offline_minutes", "total", "units"],
              "additionalProperties": False,
              "properties": {"generated_at": {"type": "string"}, "offline_minutes": {"type": "number"},
                             "total": {"type": "integer", "description": "units known, before the filter"},
                             "units": {"type": "array", "items": ref("Unit")}}},
    "Schools": {"type": "object", "required": ["generated_at", "schools"], "additionalProperties": False,
                "properties": {"generated_at": {"type": "string"}, "schools": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["school", "units", "online", "offline", "faulty", "versions"],
                    "properties": {"school": {"type": "string"}, "units": {"type": "integer"},
                                   "online": {"type": "integer"}, "offline": {"type": "integer"},
                                   "faulty": {"type": "integer"},
                                   "versions": {"type": "object", "additionalProperties": {"type": "integer"},
                                                "description": "version -> number of units"}}}}}},
}

RESPONSES = {
    "BadRequest": json_body(ref("Error"), "malformed request (the message names the field)"),
    "Unauthorized": json_body(ref("Error"), "no or an unknown district token"),
    "NotFound": json_body(ref("Error"), "no such unit"),
}


def spec() -> dict[str, Any]:
    query = [
        {"name": "school", "in": "query", "schema": {"type": "string", "maxLength": MAX_NAME}},
        {"name": "status", "in": "query", "schema": {"enum": ["", *STATUSES]},
         "description": "faulty: units reporting at least one fault"},
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": MAX_NAME},
         "description": "substring of id, room, school, hostname, version or address (case-insensitive)"},
        {"name": "sort", "in": "query", "schema": {"enum": ["", *SORT_KEYS], "default": "room"},
         "description": "empty (a filter form left alone) is the default"},
        {"name": "order", "in": "query", "schema": {"enum": ["", "asc", "desc"], "default": "asc"},
         "description": "empty is the default"},
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "classroom-edge fleet collector", "version": __version__,
                 "description": "Heartbeats in, the last state of every unit out."},
        "paths": {
            "/api/v1/heartbeat": {"post": {
                "summary": "a unit reports its state", "security": [{"districtToken": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("Heartbeat")}}},
                "responses": {
                    "204": {"description": "stored (on disk)"},
                    "400": err("BadRequest"), "401": err("Unauthorized"),
                    "403": json_body(ref("Error"), "the token is another school's than the heartbeat names"),
                    "409": json_body(ref("Error"), "the unit id belongs to another school"),
                    "413": json_body(ref("Error"), "body larger than 16 KiB"),
                    "507": json_body(ref("Error"), "the collector already keeps fleet.max_units units"),
                }}},
            "/api/v1/units": {"get": {
                "summary": "every unit's last state, filtered and sorted", "parameters": query,
                "responses": {"200": json_body(ref("Units"), "the units"), "400": err("BadRequest")}}},
            "/api/v1/units/{unit_id}": {"get": {
                "summary": "one unit", "parameters": [{"name": "unit_id", "in": "path", "required": True,
                                                       "schema": UNIT_ID_SCHEMA}],
                "responses": {"200": json_body(ref("Unit"), "the unit"), "404": err("NotFound")}}},
            "/api/v1/schools": {"get": {
                "summary": "counts per school", "responses": {"200": json_body(ref("Schools"), "per school")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "this document", "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1")}}},
        },
        "components": {
            "schemas": SCHEMAS, "responses": RESPONSES,
            "securitySchemes": {"districtToken": {
                "type": "http", "scheme": "bearer",
                "description": "the school's token from [fleet.tokens]; units send [district] heartbeat_token"}},
        },
    }
