"""The scenario and suite schema: limits, assertions, the request body a scenario becomes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.requests import MAX_MESSAGE_CHARS, MAX_TURNS_LIMIT, SimulationCreate
from contracts.scenario_schema import SCHEMA_PATH, render_scenario_schema
from contracts.scenarios import (
    MAX_SUITE_MEMBERS,
    Assertion,
    Scenario,
    SuiteCreate,
    SuiteFile,
    simulation_body,
)


def _scenario(**fields: Any) -> dict[str, Any]:
    return {"name": "s", "user": {"opening": "hi"}, **fields}


def test_the_json_schema_in_docs_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_scenario_schema(), (
        "docs/scenario.schema.json is stale: run `.venv/bin/python -m contracts.scenario_schema`"
    )


def test_a_full_scenario_becomes_a_valid_simulation_request() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "full",
            "bot": {
                "target": "llm",
                "bot_id": 16,
                "bot_prompt": "You teach colours.",
                "input_slots": {"level": 2, "tags": ["a"]},
            },
            "user": {
                "persona": "A child.",
                "goal": "Say blue.",
                "opening": "ready",
                "script": ["blue", None],
                "history": [{"role": "bot", "content": "Hello"}],
            },
            "max_turns": 4,
            "min_turns": 2,
            "criteria": ["The bot is kind."],
            "assertions": [{"contains": "sky", "turn": 1}],
            "repeat": 3,
            "tags": ["colours"],
        }
    )
    body = simulation_body(scenario)
    request = SimulationCreate.model_validate(body)
    assert request.model_dump(include=set(body)) == {
        "bot_target": "llm",
        "bot_id": 16,
        "bot_prompt": "You teach colours.",
        "input_slots": {"level": 2, "tags": ["a"]},
        "persona": "A child.",
        "goal": "Say blue.",
        "user_prompt": "ready",
        "script": ["blue", None],
        "history": [{"role": "bot", "content": "Hello"}],
        "max_turns": 4,
        "min_turns": 2,
        "criteria": ["The bot is kind."],
        "assertions": [
            {
                "contains": "sky",
                "not_contains": None,
                "matches": None,
                "not_matches": None,
                "max_latency_ms": None,
                "turn": 1,
            }
        ],
    }


def test_a_minimal_scenario_takes_the_request_defaults() -> None:
    body = simulation_body(Scenario.model_validate(_scenario()))
    assert SimulationCreate.model_validate(body) == SimulationCreate(user_prompt="hi")


def test_a_scenario_opened_by_its_script_or_history_is_valid() -> None:
    for user in (
        {"script": ["hello"]},
        {"history": [{"role": "user", "content": "hello"}]},
    ):
        scenario = Scenario.model_validate({"name": "s", "user": user})
        SimulationCreate.model_validate(simulation_body(scenario))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": {}}, "nothing to send to the bot"),
        ({"max_turns": 0}, "greater than or equal to 1"),
        ({"max_turns": MAX_TURNS_LIMIT + 1}, f"less than or equal to {MAX_TURNS_LIMIT}"),
        ({"max_turns": 2, "min_turns": 3}, "min_turns (3) is more than max_turns (2)"),
        ({"user": {"opening": "x" * (MAX_MESSAGE_CHARS + 1)}}, "at most 4000 characters"),
        ({"user": {"opening": "hi", "script": [""]}}, "at least 1 character"),
        ({"user": {"opening": "hi", "script": ["a"] * 51}}, "at most 50 items"),
        ({"criteria": [""]}, "at least 1 character"),
        ({"repeat": 0}, "greater than or equal to 1"),
        ({"tags": ["has space"]}, "should match pattern"),
        ({"bot": {"target": "http://evil"}}, "should match pattern"),
        ({"bot": {"url": "http://evil"}}, "Extra inputs are not permitted"),
        ({"judge": "me"}, "Extra inputs are not permitted"),
    ],
)
def test_a_scenario_outside_the_limits_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Scenario.model_validate(_scenario(**fields))


@pytest.mark.parametrize(
    ("assertion", "kind", "value"),
    [
        ({"contains": "cat"}, "contains", "cat"),
        ({"not_contains": "dog"}, "not_contains", "dog"),
        ({"matches": "(?i)well done", "turn": 2}, "matches", "(?i)well done"),
        ({"not_matches": r"\bbad\b"}, "not_matches", r"\bbad\b"),
        ({"max_latency_ms": 500}, "max_latency_ms", 500),
    ],
)
def test_an_assertion_has_one_check(assertion: dict[str, Any], kind: str, value: object) -> None:
    parsed = Assertion.model_validate(assertion)
    assert (parsed.kind, parsed.value) == (kind, value)
    assert kind in parsed.describe()


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ({}, "found: none"),
        ({"turn": 1}, "found: none"),
        ({"contains": "a", "matches": "b"}, "found: contains, matches"),
        ({"matches": "("}, "not a valid regular expression: missing )"),
        ({"not_matches": "[a"}, "not a valid regular expression"),
        ({"contains": "a", "turn": 0}, "greater than or equal to 1"),
        ({"max_latency_ms": 0}, "greater than or equal to 1"),
        ({"equals": "a"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_assertion_is_refused(assertion: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Assertion.model_validate(assertion)


def test_a_suite_is_a_mapping_or_a_bare_list() -> None:
    as_mapping = SuiteCreate.model_validate(
        {"name": "n", "repeat": 2, "concurrency": 3, "scenarios": [_scenario()]}
    )
    as_list = SuiteCreate.model_validate([_scenario()])
    assert as_mapping.scenarios == as_list.scenarios
    assert (as_list.name, as_list.repeat, as_list.concurrency) == (None, 1, None)
    assert as_mapping.repeat_of(as_mapping.scenarios[0]) == 2
    assert as_mapping.repeat_of(as_mapping.scenarios[0].model_copy(update={"repeat": 5})) == 5


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ({"scenarios": []}, "at least 1 item"),
        ({"scenarios": [_scenario(), _scenario()]}, "scenario name 's' is used twice"),
        ({"scenarios": [_scenario()], "include": ["x.yaml"]}, "Extra inputs are not permitted"),
        ({"scenarios": [_scenario()], "concurrency": 0}, "greater than or equal to 1"),
        (
            {"scenarios": [_scenario(name=f"s{i}", repeat=100) for i in range(21)]},
            f"more than {MAX_SUITE_MEMBERS}",
        ),
    ],
)
def test_a_bad_suite_body_is_refused(suite: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SuiteCreate.model_validate(suite)


def test_a_suite_file_needs_scenarios_or_includes() -> None:
    assert SuiteFile.model_validate({"include": ["other.yaml"]}).scenarios == []
    with pytest.raises(ValidationError, match="has scenarios or include"):
        SuiteFile.model_validate({"name": "empty"})
