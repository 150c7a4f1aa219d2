"""The OpenAPI 3.1 document for /api/v1 (schemas are JSON Schema 2020-12; tests validate responses by it)."""

from __future__ import annotations

from typing import Any

from edge import __version__, limits
from edge.config import WEEKDAYS
from edge.rotation.engine import ACTIONS
from edge.rotation.plan import KINDS
from edge.serving.errors import ERROR_SCHEMA
from edge.serving.openapi import err, json_body, name_schema, ref

SESSION_COOKIE = "edge_session"


# What JSON Schema cannot say: a body of the right shape is still refused (422) for these reasons only.
CROSS_FIELD_RULES = (
    "must be shorter than the work period",  # warning_seconds < work_minutes * 60
    "duplicate name",  # station, group and period names are unique
    "is already in group",  # a student is in one group
    "must be a cache path",  # lessons are <origin>/<path> without '..' or empty parts
    "must not contain control or text-direction characters",  # also unassigned and private-use code points
    "must match the name in the URL",  # PUT /plans/{name}
    "there is no saved plan called",  # a period starts a saved plan
    "cannot group",  # /groups: the class cannot be split so (sizes, G, constraints), no such plan or skill
)
NUM = {"type": "number"}
NULLABLE_NUM = {"type": ["number", "null"]}
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": ERROR_SCHEMA,
    "Rotation": {
        "type": "object", "additionalProperties": False,
        "required": ["status", "phase", "phase_word", "underlying_phase", "plan", "round", "rounds", "remaining_s",
                     "countdown_text", "stage_remaining_s", "phase_ends_at", "stage_ends_at", "server_time",
                     "groups", "assignments", "next_assignments", "stations", "quiet", "fault", "seq",
                     "server_id", "teacher_setup"],
        "properties": {
            "status": {"enum": ["idle", "running", "paused", "done"]},
            "phase": {"enum": ["idle", "work", "warning", "transition", "paused", "done"]},
            "phase_word": {"type": "string", "description": "WORK, 1 MIN LEFT, MOVE, PAUSED, DONE or IDLE"},
            "underlying_phase": {"enum": ["idle", "work", "warning", "transition", "done"],
                                 "description": "the phase a pause froze"},
            "plan": {"type": ["string", "null"]},
            "round": {"type": "integer", "minimum": 0},
            "rounds": {"type": "integer", "minimum": 0},
            "remaining_s": {**NUM, "minimum": 0, "description": "until the current phase ends (frozen when paused)"},
            "countdown_text": {"type": "string", "pattern": "^[0-9]+:[0-5][0-9]$",
                               "description": "what the pages show: M:SS until the work period/transition ends"},
            "stage_remaining_s": {**NUM, "minimum": 0, "description": "until the work period/transition ends"},
            "phase_ends_at": {**NULLABLE_NUM, "description": "Unix time the phase ends; null unless running"},
            "stage_ends_at": {**NULLABLE_NUM, "description": "Unix time the work period/transition ends"},
            "server_time": {**NUM, "description": "the unit's Unix time when this was made"},
            "groups": {"type": "array", "items": {"type": "string"}, "description": "plan order"},
            "assignments": {**STR_MAP, "description": "group -> station this round"},
            "next_assignments": {**STR_MAP, "description": "group -> station next round ({} in the last)"},
            "stations": {"type": "array", "items": ref("StationState")},
            "quiet": {"type": "boolean"},
            "fault": {"type": ["string", "null"]},
            "seq": {"type": "integer", "description": "increases with every change"},
            "server_id": {"type": "string", "description": "changes when the unit restarts"},
            "teacher_setup": {"type": "boolean", "description": "no teacher PIN yet: the station board shows the "
                                                                "one-time setup code (never in this document)"},
        },
    },
    "StationState": {
        "type": "object", "required": ["name", "kind", "lessons"], "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "kind": {"enum": list(KINDS)},
                       "lessons": {"type": "array", "items": {"type": "string"},
                                   "description": "lesson-cache paths <origin>/<path>"}},
    },
    "StartRequest": {
        "type": "object", "required": ["plan"], "additionalProperties": False,
        "properties": {"plan": name_schema(description="a saved plan's name")},
    },
    "Plan": {
        "type": "object", "required": ["name", "work_minutes", "stations", "groups"], "additionalProperties": False,
        "description": "Also refused (422) when: " + "; ".join(CROSS_FIELD_RULES[:6]) + ".",
        "properties": {
            "name": name_schema(),
            "work_minutes": {**NUM, "minimum": limits.WORK_MINUTES_MIN, "maximum": limits.WORK_MINUTES_MAX},
            "warning_seconds": {**NUM, "minimum": 0, "maximum": limits.WARNING_SECONDS_MAX, "default": 60,
                                "description": "the end of each work period; shorter than it"},
            "transition_seconds": {**NUM, "minimum": 0, "maximum": limits.TRANSITION_SECONDS_MAX, "default": 90},
            "rounds": {"type": "integer", "minimum": 0, "maximum": limits.ROUNDS_MAX, "default": 0,
                       "description": "0 = one per station"},
            "stations": {"type": "array", "minItems": 1, "maxItems": limits.STATIONS_MAX, "items": {
                "type": "object", "required": ["name", "kind"], "additionalProperties": False,
                "properties": {"name": name_schema(), "kind": {"enum": list(KINDS)},
                               "lessons": {"type": "array", "maxItems": limits.LESSONS_MAX,
                                           "items": {**name_schema(limits.LESSON_PATH_MAX),
                                                     "description": "a lesson-cache path <origin>/<path>"}}}}},
            "groups": {"type": "array", "minItems": 1, "maxItems": limits.GROUPS_MAX, "items": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": name_schema(),
                               "members": {"type": "array", "maxItems": limits.MEMBERS_MAX,
                                           "items": name_schema(limits.STUDENT_ID_MAX, "a pseudonymous student id"),
                                           "description": "each student in one group only"}}}},
        },
    },
    "PlanSummary": {
        "type": "object", "required": ["name", "stations", "groups", "rounds", "total_s"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "stations": {"type": "integer"}, "groups": {"type": "integer"},
                       "rounds": {"type": "integer"}, "total_s": NUM},
    },
    "PlanList": {
        "type": "object", "required": ["plans", "broken"], "additionalProperties": False,
        "properties": {"plans": {"type": "array", "items": ref("PlanSummary")},
                       "broken": {"type": "array", "items": {"type": "string"},
                                  "description": "saved plan files that do not validate"}},
    },
    "Period": {
        "type": "object", "required": ["name", "plan", "days", "start"], "additionalProperties": False,
        "properties": {"name": name_schema(), "plan": name_schema(description="the saved plan the bell starts"),
                       "days": {"type": "array", "minItems": 1, "maxItems": 7, "items": {"enum": list(WEEKDAYS)}},
                       "start": {"type": "string", "pattern": "^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
                                 "description": "local time HH:MM"}},
    },
    "Periods": {
        "type": "object", "required": ["periods"], "additionalProperties": False,
        "description": "Also refused (422) when: " + "; ".join(CROSS_FIELD_RULES[i] for i in (1, 4, 6)) + ".",
        "properties": {"periods": {"type": "array", "maxItems": limits.PERIODS_MAX, "items": ref("Period")},
                       "config_periods": {"type": "array", "items": ref("Period"),
                                          "description": "from edge.toml; read-only here"}},
    },
    "Proposal": {
        "type": "object", "additionalProperties": False,
        "required": ["skill", "mode", "groups", "thin", "moved", "sse", "kept", "absent", "teacher_group", "scores"],
        "properties": {
            "skill": {"type": "string"}, "mode": {"enum": ["homogeneous", "mixed"]},
            "groups": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["name", "students", "mean_p_known", "first_station"],
                "properties": {"name": {"type": "string"}, "students": {"type": "array", "items": {"type": "string"}},
                               "mean_p_known": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                               "first_station": {"type": ["string", "null"],
                                                 "description": "where the group starts (round 1)"}}}},
            "thin": {"type": "array", "items": {"type": "string"},
                     "description": "too little evidence to place by score: send them to the online station first"},
            "moved": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["student", "from", "to"],
                "properties": {"student": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}}}},
            "sse": {**NUM, "minimum": 0, "description": "within-group sum of squared deviations of P(known)"},
            "kept": {"type": "array", "items": {"type": "string"}},
            "absent": {"type": "array", "items": {"type": "string"}},
            "teacher_group": {"type": ["string", "null"], "description": "the lowest-mean group, at the teacher "
                                                                          "station in round 1"},
            "scores": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["p_known", "n"],
                "properties": {"p_known": {"type": ["number", "null"]}, "n": {"type": "integer", "minimum": 0}}}},
        },
    },
    "GroupsApply": {
        "type": "object", "required": ["plan", "groups"], "additionalProperties": False,
        "description": "The proposal's parameters (as the query of /groups/proposal) and the teacher's groups: every "
                       "student of the proposal in exactly one group.",
        "properties": {
            "plan": name_schema(), "skill": name_schema(limits.SKILL_MAX),
            "groups": {"type": "array", "minItems": 1, "maxItems": limits.GROUPS_MAX, "items": {
                "type": "object", "required": ["name", "students"], "additionalProperties": False,
                "properties": {"name": name_schema(), "students": {"type": "array", "minItems": 1,
                                                              "maxItems": limits.MEMBERS_MAX,
                                                              "items": name_schema(limits.STUDENT_ID_MAX)}}}},
            "mode": {"enum": ["homogeneous", "mixed"]},
            "min_size": {"type": "integer", "minimum": 1, "maximum": 40},
            "max_size": {"type": "integer", "minimum": 1, "maximum": 40},
            "margin": {**NUM, "minimum": 0, "maximum": 0.5},
            "pins": {"type": "array", "maxItems": 500, "items": {"type": "string", "description": "STUDENT=GROUP"}},
            "apart": {"type": "array", "maxItems": 1000, "items": {"type": "string", "description": "A,B"}},
            "absent": {"type": "array", "maxItems": 500, "items": name_schema(limits.STUDENT_ID_MAX)},
        },
    },
    "Applied": {
        "type": "object", "required": ["grouping", "plan", "proposal"], "additionalProperties": False,
        "properties": {"grouping": {"type": "integer", "description": "its id in the history"},
                       "plan": ref("Plan"), "proposal": ref("Proposal")},
    },
    "GroupsHistory": {
        "type": "object", "required": ["groupings", "change_since_last"], "additionalProperties": False,
        "properties": {
            "groupings": {"type": "array", "items": {"type": "object"}, "description": "newest first"},
            "change_since_last": {"type": "array", "items": {
                "type": "object", "description": "per group of the last grouping: its mean P(known) then and now",
                "properties": {"name": {"type": "string"}, "teacher_table": {"type": "boolean"},
                               "mean_then": {"type": ["number", "null"]}, "mean_now": {"type": ["number", "null"]},
                               "change": {"type": ["number", "null"]}}}},
        },
    },
}

RESPONSES = {
    "BadRequest": json_body(ref("Error"), "the request body is not what the operation takes"),
    "Unauthorized": json_body(ref("Error"), "no or invalid bearer token / teacher session"),
    "Forbidden": json_body(ref("Error"), "teacher session without a valid X-CSRF-Token header"),
    "NotFound": json_body(ref("Error"), "no such saved plan (or a name that cannot be one, such as one with '/')"),
    "Conflict": json_body(ref("Error"), "the action does not apply now (e.g. pause when idle), the name is taken, or "
                                     "a bell period starts the plan"),
    "Invalid": json_body(ref("Error"), "validation failed; key and reason name the problem"),
    "Unavailable": json_body(ref("Error"), "the mastery service does not answer (regrouping reads it)"),
}
AUTHED = {"401": err("Unauthorized"), "403": err("Forbidden")}


def _action(action: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"rotation_{action}", "summary": f"{action} the rotation", "tags": ["rotation"],
        "responses": {"200": json_body(ref("Rotation"), "the new state"), "409": err("Conflict"), **AUTHED},
    }
    if action == "start":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref("StartRequest")}}}
        op["responses"] |= {"400": err("BadRequest"), "404": err("NotFound")}
    return {"post": op}


NAME = {"name": "name", "in": "path", "required": True, "schema": name_schema()}
PLAN_BODY = {"required": True, "content": {"application/json": {"schema": ref("Plan")}}}


def spec() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/rotation": {"get": {
            "operationId": "rotation_get", "summary": "the rotation state (public: no student ids)",
            "tags": ["rotation"], "security": [],
            "responses": {"200": json_body(ref("Rotation"), "the state now")}}},
        **{f"/rotation/{a}": _action(a) for a in ACTIONS},
        "/plans": {
            "get": {"operationId": "plans_list", "tags": ["plans"],
                    "responses": {"200": json_body(ref("PlanList"), "saved plans"), **AUTHED}},
            "post": {"operationId": "plans_create", "tags": ["plans"], "requestBody": PLAN_BODY,
                     "responses": {"201": json_body(ref("Plan"), "saved"), "400": err("BadRequest"),
                                   "409": err("Conflict"), "422": err("Invalid"), **AUTHED}}},
        "/plans/{name}": {
            "parameters": [NAME],
            "get": {"operationId": "plans_get", "tags": ["plans"],
                    "responses": {"200": json_body(ref("Plan"), "the plan"), "404": err("NotFound"), **AUTHED}},
            "put": {"operationId": "plans_put", "tags": ["plans"], "requestBody": PLAN_BODY,
                    "responses": {"200": json_body(ref("Plan"), "saved (created or replaced)"),
                                  "400": err("BadRequest"), "404": err("NotFound"), "422": err("Invalid"),
                                  **AUTHED}},
            "delete": {"operationId": "plans_delete", "tags": ["plans"],
                       "responses": {"204": {"description": "deleted"}, "404": err("NotFound"),
                                     "409": err("Conflict"), **AUTHED}}},
        "/periods": {
            "get": {"operationId": "periods_get", "tags": ["periods"],
                    "responses": {"200": json_body(ref("Periods"), "the teacher's period schedule"),
                                  "409": err("Conflict"), **AUTHED}},
            "put": {"operationId": "periods_put", "tags": ["periods"],
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": ref("Periods")}}},
                    "responses": {"200": json_body(ref("Periods"), "saved"), "400": err("BadRequest"),
                                  "422": err("Invalid"), **AUTHED}}},
        "/groups/proposal": {"get": {
            "operationId": "groups_proposal", "tags": ["groups"],
            "summary": "groups for a saved plan from the mastery service's estimates (not applied)",
            "description": "Refused (422, 'cannot group: ...') when the class cannot be split that way: no such "
                           "plan, no skill, sizes or G the class cannot fill, constraints that cannot all hold.",
            "parameters": [
                {"name": "plan", "in": "query", "required": True, "schema": name_schema()},
                {"name": "skill", "in": "query", "schema": name_schema(limits.SKILL_MAX)},
                {"name": "groups", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 40}},
                {"name": "min_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 40}},
                {"name": "max_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 40}},
                {"name": "margin", "in": "query", "schema": {**NUM, "minimum": 0, "maximum": 0.5}},
                {"name": "mode", "in": "query", "schema": {"enum": ["homogeneous", "mixed"]}}],
            "responses": {"200": json_body(ref("Proposal"), "the proposal"), "400": err("BadRequest"),
                          "422": err("Invalid"),
                          "503": err("Unavailable"), **AUTHED}}},
        "/groups": {"post": {
            "operationId": "groups_apply", "tags": ["groups"],
            "summary": "write the teacher's groups into the saved plan (they take effect at its next start)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("GroupsApply")}}},
            "responses": {"200": json_body(ref("Applied"), "applied and recorded"), "400": err("BadRequest"),
                          "422": err("Invalid"), "503": err("Unavailable"), **AUTHED}}},
        "/groups/history": {"get": {
            "operationId": "groups_history", "tags": ["groups"],
            "parameters": [{"name": "skill", "in": "query", "description": "empty or absent: every skill",
                            "schema": {"anyOf": [{"const": ""}, name_schema(limits.SKILL_MAX)]}}],
            "responses": {"200": json_body(ref("GroupsHistory"), "applied groupings and the change since the last"),
                          "400": err("BadRequest"), "503": err("Unavailable"), **AUTHED}}},
        "/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["meta"], "security": [],
            "responses": {"200": {"description": "this document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Classroom edge: rotation API", "version": __version__,
                 "description": "The station-rotation timer of one classroom unit. Writes need the teacher "
                                "session cookie plus X-CSRF-Token, or a bearer token ([web] api_token)."},
        "servers": [{"url": "/api/v1"}],
        "x-refusal-rules": list(CROSS_FIELD_RULES),
        "security": [{"bearer": []}, {"teacherSession": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "teacherSession": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
    }
