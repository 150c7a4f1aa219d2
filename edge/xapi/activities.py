"""Activities (xAPI 1.0.3 Data 2.4.4.1): the Activity object, its definition and interaction components."""

from __future__ import annotations

from typing import Any

from edge.exc import StatementError
from edge.xapi import fields as f

ACTIVITY_KEYS = frozenset({"objectType", "id", "definition"})
DEFINITION_KEYS = frozenset({"name", "description", "type", "moreInfo", "extensions", "interactionType",
                             "correctResponsesPattern", "choices", "scale", "source", "target", "steps"})
INTERACTION_TYPES = frozenset({"true-false", "choice", "fill-in", "long-fill-in", "matching", "performance",
                               "sequencing", "likert", "numeric", "other"})
COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")
COMPONENT_KEYS = frozenset({"id", "description"})
MAX_COMPONENTS = 1000


def activity(value: Any, field: str) -> dict[str, Any]:
    """An Activity object: an IRI id and an optional definition."""
    d = f.keys(value, field, ACTIVITY_KEYS, ("id",))
    if d.get("objectType", "Activity") != "Activity":
        raise StatementError(f"{field}.objectType", "must be \"Activity\"")
    f.iri(d["id"], f"{field}.id")
    if "definition" in d:
        definition(d["definition"], f"{field}.definition")
    return d


_DEFINITION_CHECKS: dict[str, f.Check] = {"name": f.language_map, "description": f.language_map, "type": f.iri,
                                           "moreInfo": f.iri, "extensions": f.extensions}


def definition(value: Any, field: str) -> None:
    d = f.keys(value, field, DEFINITION_KEYS)
    f.each_present(d, field, _DEFINITION_CHECKS)
    interaction = d.get("interactionType")
    if interaction is not None and (type(interaction) is not str or interaction not in INTERACTION_TYPES):
        raise StatementError(f"{field}.interactionType", f"must be one of {', '.join(sorted(INTERACTION_TYPES))}")
    if "correctResponsesPattern" in d:
        if interaction is None:
            raise StatementError(f"{field}.interactionType", "is required with correctResponsesPattern")
        for i, p in enumerate(f.array(d["correctResponsesPattern"], f"{field}.correctResponsesPattern")):
            f.string(p, f"{field}.correctResponsesPattern[{i}]")
    for name in COMPONENT_LISTS:
        if name in d:
            if interaction is None:
                raise StatementError(f"{field}.interactionType", f"is required with {name}")
            _components(d[name], f"{field}.{name}")


def _components(value: Any, field: str) -> None:
    items = f.array(value, field)
    if len(items) > MAX_COMPONENTS:
        raise StatementError(field, f"at most {MAX_COMPONENTS} interaction components")
    seen: set[str] = set()
    for i, item in enumerate(items):
        c = f.keys(item, f"{field}[{i}]", COMPONENT_KEYS, ("id",))
        ident = f.string(c["id"], f"{field}[{i}].id", empty=False)
        if ident in seen:
            raise StatementError(f"{field}[{i}].id", "repeats an id of this list (ids must be distinct)")
        seen.add(ident)
        if "description" in c:
            f.language_map(c["description"], f"{field}[{i}].description")
