"""The example suites load, and what they assert of the demo bot is what the demo bot says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts.assertions import Assertion
from contracts.scenarios import Scenario
from services.common.suite_files import load_suite
from services.demo_bot.chat_completions import ChatMessage, teacher_reply
from services.demo_bot.teacher import Teacher

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("examples/suite.yaml", "examples/demo-suite.yaml")


def _demo_bot_replies(scenario: Scenario) -> list[str]:
    """The demo bot's replies to the scenario's scripted lines (up to the first unscripted)."""
    lines: list[str] = []
    for line in [scenario.user.opening, *scenario.user.script][: scenario.max_turns]:
        if line is None:
            break
        lines.append(line)
    if scenario.bot.target in (None, "default"):
        assert scenario.bot.bot_id is not None
        teacher = Teacher.for_bot(scenario.bot.bot_id)
        return [teacher.reply(line) for line in lines]
    assert scenario.bot.target == "llm"
    assert scenario.bot.bot_prompt
    messages = [ChatMessage(role="system", content=scenario.bot.bot_prompt)]
    replies = []
    for line in lines:
        messages.append(ChatMessage(role="user", content=line))
        replies.append(teacher_reply(messages))
        messages.append(ChatMessage(role="assistant", content=replies[-1]))
    return replies


def _holds(assertion: Assertion, reply: str) -> bool:
    value = assertion.value
    match assertion.kind:
        case "contains":
            return str(value) in reply
        case "not_contains":
            return str(value) not in reply
        case "matches":
            return re.search(str(value), reply) is not None
        case "not_matches":
            return re.search(str(value), reply) is None
        case "max_latency_ms":
            return True  # a matter of the running stack, not of the words


@pytest.mark.parametrize("path", EXAMPLES)
def test_the_example_suite_loads_and_its_assertions_hold_for_the_demo_bot(path: str) -> None:
    suite = load_suite([REPO / path])
    assert suite.scenarios
    for scenario in suite.scenarios:
        assert scenario.assertions, scenario.name
        replies = _demo_bot_replies(scenario)
        for assertion in scenario.assertions:
            if assertion.turn is not None and assertion.turn > len(replies):
                continue  # a reply to an improvised line: not known in advance
            checked = replies if assertion.turn is None else [replies[assertion.turn - 1]]
            assert all(_holds(assertion, reply) for reply in checked), (
                scenario.name,
                assertion.describe(),
                checked,
            )


def test_the_demo_suite_is_small_and_shows_a_verdict_without_any_llm() -> None:
    suite = load_suite([REPO / "examples/demo-suite.yaml"])
    members = sum(suite.repeat_of(scenario) for scenario in suite.scenarios)
    assert members <= 4  # `make demo` waits for it
    assert any(not scenario.criteria for scenario in suite.scenarios)  # pass/fail offline
    assert any(scenario.criteria for scenario in suite.scenarios)  # `unjudged` offline
    for scenario in suite.scenarios:  # every user line scripted: the same run every time
        assert None not in scenario.user.script
        assert len(scenario.user.script) + 1 >= scenario.max_turns
