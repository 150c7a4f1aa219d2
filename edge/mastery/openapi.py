"""The OpenAPI 3.1 document of the mastery service's own JSON API (served at /api/v1/openapi.json): compact
evidence in, mastery reports and district sync status out. The xAPI resources under /xapi/ are specified by
xAPI 1.0.3 itself (and checked by the ADL conformance suite), not here.
"""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.limits import EVENT_TIME_MAX_S, EVIDENCE_ID_MAX, REQUEST_ITEMS_MAX, SKILL_MAX, STUDENT_ID_MAX
from edge.serving.errors import ERROR_SCHEMA
from edge.serving.openapi import err, error_responses, json_body, name_schema, ref

BANDS = ("needs_help", "practising", "mastered")

# What JSON Schema cannot say: a body of the right shape is still refused (400) for these reasons only.
RULES = (
    "must be ISO 8601 or epoch seconds",  # a timestamp string must be one of the two
    "must not contain control or text-direction characters",  # also unassigned and private-use code points
    "repeats an earlier id in this request",  # the same id twice with different content
)

CELL: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["p_known", "responses", "band"],
    "properties": {
        "p_known": {"type": "number", "minimum": 0, "maximum": 1,
                    "description": "P(the skill is known) after this evidence (BKT)"},
        "responses": {"type": "integer", "minimum": 0},
        "band": {"enum": list(BANDS), "description": "needs_help < bands[0] <= practising < bands[1] <= mastered"},
    },
}
BANDS_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                "minItems": 2, "maxItems": 2}

SCHEMAS: dict[str, Any] = {
    "Error": ERROR_SCHEMA,
    "EvidenceItem": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "student", "skill", "correct", "timestamp"],
        "properties": {
            "id": {**name_schema(EVIDENCE_ID_MAX), "description": "the client's id: the same id with the same "
                                                                  "content again is a no-op, with other content a 409"},
            "student": name_schema(STUDENT_ID_MAX, "the student's pseudonymous id (never a name)"),
            "skill": name_schema(SKILL_MAX, "the skill the answer is evidence of"),
            "correct": {"enum": [True, False, 0, 1]},
            "timestamp": {
                "description": "when the student answered: ISO 8601 (UTC without an offset) or epoch seconds",
                "anyOf": [{"type": "string", "format": "date-time", "maxLength": 64},
                          {"type": "number", "minimum": 0, "maximum": EVENT_TIME_MAX_S}]},
        },
    },
    "Stored": {
        "type": "object", "additionalProperties": False, "required": ["ids"],
        "properties": {"ids": {"type": "array", "items": {"type": "string"}, "maxItems": REQUEST_ITEMS_MAX,
                               "description": "the ids stored (or already stored with the same content)"}},
    },
    "SkillReport": {
        "type": "object", "additionalProperties": False, "required": ["skill", "bands", "students"],
        "properties": {
            "skill": {"type": "string"}, "bands": BANDS_SCHEMA,
            "students": {"type": "array", "description": "students with evidence on the skill, and the roster's "
                                                         "students (at the skill's prior) even without any",
                         "items": {**CELL, "required": ["student", *CELL["required"]],
                                   "properties": {"student": {"type": "string"}, **CELL["properties"]}}},
        },
    },
    "StudentReport": {
        "type": "object", "additionalProperties": False, "required": ["student", "bands", "skills"],
        "properties": {
            "student": {"type": "string"}, "bands": BANDS_SCHEMA,
            "skills": {"type": "array", "description": "the skills the student has answered",
                       "items": {**CELL, "required": ["skill", *CELL["required"]],
                                 "properties": {"skill": {"type": "string"}, **CELL["properties"]}}},
        },
    },
    "SyncStatus": {
        "type": "object", "required": ["enabled", "lrs", "message", "backlog", "oldest_unsent_age_s", "quarantined"],
        "properties": {
            "enabled": {"type": "boolean", "description": "false: no district.lrs_url (evidence is kept)"},
            "lrs": {"type": ["string", "null"], "description": "the district LRS, credentials redacted"},
            "message": {"type": "string"},
            "backlog": {"type": "integer", "minimum": 0, "description": "statements not yet delivered"},
            "oldest_unsent_age_s": {"type": ["number", "null"], "minimum": 0},
            "oldest_unsent_at": {"type": ["string", "null"]},
            "sent_total": {"type": "integer", "minimum": 0},
            "last_success": {"type": ["string", "null"]},
            "last_error": {"type": ["string", "null"]},
            "last_error_at": {"type": ["string", "null"]},
            "quarantined": {"type": "integer", "minimum": 0,
                            "description": "statements the LRS keeps refusing, set aside"},
            "quarantine": {"type": "array"},
        },
    },
    "SyncStarted": {"type": "object", "additionalProperties": False, "required": ["status"],
                    "properties": {"status": {"type": "string"}}},
}

RESPONSES = error_responses({
    "BadRequest": "the body or a parameter is not what the operation takes; key and reason name it",
    "Unauthorized": "HTTP Basic auth required: user 'class', password = mastery.class_key",
    "NotFound": "no evidence for this student",
    "Conflict": "an id already stored with other content; or sync is off",
    "TooLarge": f"more than {REQUEST_ITEMS_MAX} items, or a body over 1 MiB",
    "Unavailable": "mastery.class_key is not set: the service refuses evidence and reads",
})
AUTHED = {"401": err("Unauthorized"), "503": err("Unavailable")}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Classroom edge: mastery API", "version": __version__,
                 "description": "Compact evidence in and mastery reports out, for the unit's own pages and a "
                                "district's tools (the xAPI LRS is at /xapi/, as xAPI 1.0.3 specifies). Also "
                                "refused (400) when: " + "; ".join(RULES) + "."},
        "servers": [{"url": "/"}],
        "x-refusal-rules": list(RULES),
        "security": [{"classKey": []}],
        "paths": {
            "/api/v1/evidence": {"post": {
                "operationId": "evidence_post", "tags": ["evidence"],
                "summary": "store scored answers (committed before the answer; each id once)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "array", "maxItems": REQUEST_ITEMS_MAX, "items": ref("EvidenceItem")}}}},
                "responses": {"200": json_body(ref("Stored"), "stored"), "400": err("BadRequest"),
                              "409": err("Conflict"), "413": err("TooLarge"), **AUTHED}}},
            "/api/v1/mastery": {"get": {
                "operationId": "mastery_skill", "tags": ["mastery"], "summary": "one skill's report",
                "parameters": [{"name": "skill", "in": "query", "required": True, "schema": name_schema(SKILL_MAX)}],
                "responses": {"200": json_body(ref("SkillReport"), "the report"), "400": err("BadRequest"),
                              **AUTHED}}},
            "/api/v1/mastery/students/{student}": {"get": {
                "operationId": "mastery_student", "tags": ["mastery"], "summary": "one student's skills",
                "parameters": [{"name": "student", "in": "path", "required": True,
                                "schema": name_schema(STUDENT_ID_MAX)}],
                "responses": {"200": json_body(ref("StudentReport"), "the report"), "400": err("BadRequest"),
                              "404": err("NotFound"), **AUTHED}}},
            "/api/v1/sync": {
                "get": {"operationId": "sync_status", "tags": ["sync"], "summary": "district sync status",
                        "responses": {"200": json_body(ref("SyncStatus"), "the status"), **AUTHED}},
                "post": {"operationId": "sync_now", "tags": ["sync"], "summary": "start an upload round now",
                         "responses": {"202": json_body(ref("SyncStarted"), "started; poll GET for the outcome"),
                                       "409": err("Conflict"), **AUTHED}}},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "tags": ["meta"], "security": [],
                "responses": {"200": json_body({"type": "object"}, "this document")}}},
        },
        "components": {
            "schemas": SCHEMAS, "responses": RESPONSES,
            "securitySchemes": {"classKey": {"type": "http", "scheme": "basic",
                                             "description": "user 'class', password = mastery.class_key"}},
        },
    }
