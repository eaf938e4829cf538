"""How a conversation ends (stop phrase, min_turns) and the script cursor: pure rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.requests import SimulationRequest
from services.orchestrator.endings import UserMove, read_user_message, user_instructions
from services.orchestrator.script import scripted_message

STOP = "###STOP###"


def _read(content: str, bot_replies: int, min_turns: int = 1) -> UserMove | None:
    return read_user_message(content, STOP, bot_replies=bot_replies, min_turns=min_turns)


def test_a_message_without_the_phrase_is_sent_as_it_is() -> None:
    assert _read("Hello", 0) == UserMove("Hello")


def test_the_phrase_with_text_left_sends_the_text_then_ends() -> None:
    assert _read("Thanks, bye! ###STOP###", 2) == UserMove("Thanks, bye!", ends=True)
    assert _read("###STOP### bye ###STOP###", 2) == UserMove("bye", ends=True)


def test_only_the_phrase_ends_at_once() -> None:
    assert _read("  ###STOP###\n", 1) == UserMove("", ends=True)


def test_before_min_turns_the_phrase_is_stripped_and_the_talk_goes_on() -> None:
    assert _read("ok bye ###STOP###", 1, min_turns=3) == UserMove("ok bye")
    # Its answer would be the third reply: the user may end there.
    assert _read("ok bye ###STOP###", 2, min_turns=3) == UserMove("ok bye", ends=True)


def test_before_min_turns_only_the_phrase_is_asked_for_again() -> None:
    assert _read("###STOP###", 2, min_turns=3) is None
    assert _read("###STOP###", 3, min_turns=3) == UserMove("", ends=True)


def test_the_instructions_hold_persona_goal_and_the_stop_phrase() -> None:
    text = user_instructions("You are Lan.", "Learn the word 'cat'.", STOP)
    assert text.startswith("You are Lan.")
    assert "Your goal in this conversation: Learn the word 'cat'." in text
    assert STOP in text
    assert "goal" not in user_instructions("You are Lan.", None, STOP).replace("your goal", "")


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate({"simulation_id": "s", "bot_id": 1, **fields})


def test_the_script_starts_with_the_first_message_sent() -> None:
    request = _request(script=["a", None, "c"])
    assert [scripted_message(request, n) for n in range(1, 6)] == ["a", None, "c", None, None]


def test_with_a_user_prompt_the_script_fills_the_turns_after_it() -> None:
    request = _request(user_prompt="hi", script=["a", None, "c"])
    assert [scripted_message(request, n) for n in range(1, 6)] == [None, "a", None, "c", None]


def test_with_history_ending_on_a_user_line_the_script_comes_after_it() -> None:
    request = _request(history=[{"role": "user", "content": "yo"}], script=["a"])
    assert [scripted_message(request, n) for n in range(1, 3)] == [None, "a"]


def test_a_script_alone_opens_the_conversation() -> None:
    assert _request(script=[None]).has_fixed_opening() is False
    with pytest.raises(ValidationError, match="nothing to send"):
        _request()


def test_min_turns_above_max_turns_is_refused_naming_min_turns() -> None:
    with pytest.raises(ValidationError) as caught:
        _request(user_prompt="hi", max_turns=2, min_turns=3)
    assert caught.value.errors()[0]["loc"] == ("min_turns",)
    assert _request(user_prompt="hi", max_turns=2, min_turns=2).min_turns == 2


def test_script_items_are_bounded_and_not_empty() -> None:
    with pytest.raises(ValidationError) as caught:
        _request(user_prompt="hi", script=["ok", "", "x" * 4_001])
    assert [e["loc"] for e in caught.value.errors()] == [("script", 1), ("script", 2)]
    with pytest.raises(ValidationError, match="script"):
        _request(user_prompt="hi", script=["x"] * 51)
