"""schemathesis runs against the unit's OpenAPI documents, shared by the per-service fuzz tests.

Bounded and seeded: a fixed number of examples per operation and generation mode, derandomized, so CI is
repeatable. Every answer must be documented and match its schema (no 5xx, no undocumented status, strict JSON).
Schema-valid data may be refused only for a rule the document itself lists (`x-refusal-rules`: what JSON Schema
cannot say); schema-violating data must be refused (a 4xx).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.config._checks import NegativeDataRejectionConfig

RULES_KEY = "x-refusal-rules"


@schemathesis.check
def refused_only_for_documented_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schema-valid data may be refused (400/422) only for a rule the document lists."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and response.status_code in (400, 422):
        body = response.json()
        reason = f"{body.get('reason', '')} {body.get('error', '')}"
        rules = case.operation.schema.raw_schema.get(RULES_KEY, [])
        assert any(rule in reason for rule in rules), f"schema-valid data refused: {body}"
    return None


def modes(operation: Any) -> list[GenerationMode]:
    """Schema-valid data, and schema-violating data for operations that take any (a body or parameters)."""
    takes_input = operation.body or operation.query or operation.path_parameters
    return [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if takes_input else [])]


def fuzz_schema(schema: Any, examples: int, **call: Any) -> list[str]:
    """Every operation of `schema` in every mode that applies, `examples` cases each, answers validated;
    `call` goes to each request (base_url, session, headers). The labels of the operations run."""
    # schemathesis's own check of invalid data, which also knows what is not really invalid once sent (extra
    # query parameters, a number sent as text); a 413 (more than a request may carry) is a refusal too
    refusals = NegativeDataRejectionConfig().expected_statuses or []
    schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(expected_statuses=[*refusals, 413])
    ran: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes(operation):
            _fuzz(operation, mode, examples, call)
        ran.append(operation.label)
    return ran


def _fuzz(operation: Any, mode: GenerationMode, examples: int, call: dict[str, Any]) -> None:
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        case.call_and_validate(**call, excluded_checks=[positive_data_acceptance],
                               additional_checks=[refused_only_for_documented_rules])

    run()
