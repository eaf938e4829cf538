"""The judge without a broker: assertions over bot replies, the verdict rules, the judge LLM's
prompt and structured answer, and one judgement from a fake log (idempotency included)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from contracts.assertions import Assertion
from contracts.events import (
    CompletedEvent,
    ErrorInfo,
    FailedEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    StopReason,
    TurnEvent,
    TurnUsage,
)
from contracts.ids import new_simulation_id
from contracts.judgement import AssertionResult, CriterionResult, JudgedEvent
from contracts.requests import SimulationRequest
from services.common.event_log import LoggedSimulation
from services.common.pricing import ModelPrice
from services.judge.assertions import BotReply, bot_replies, evaluate
from services.judge.case import Case, CriteriaVerdicts
from services.judge.judging import Judging, LogBehind
from services.judge.llm_judge import RESPONSE_FORMAT, LLMJudge, judge_messages, parse_verdicts
from services.judge.metrics import JudgeMetrics
from services.judge.offline_judge import UNJUDGED_OFFLINE, OfflineJudge
from services.judge.verdict import score_of, verdict_of

REPLIES = [
    BotReply(1, "Hello! What is your name?", 120),
    BotReply(2, "Nice to meet you, Lan. Do you like cats?", 900),
    BotReply(3, "Great. Goodbye!", 80),
]


def _assertion(**check: Any) -> Assertion:
    return Assertion.model_validate(check)


@pytest.mark.parametrize(
    ("check", "passed", "turn"),
    [
        ({"contains": "!"}, False, 2),
        ({"contains": "Hello", "turn": 1}, True, None),
        ({"not_contains": "cats"}, False, 2),
        ({"matches": r"\?$"}, False, 3),
        ({"matches": r"^[A-Z]"}, True, None),
        ({"not_matches": r"Good(bye)?"}, False, 3),
        ({"max_latency_ms": 500}, False, 2),
        ({"max_latency_ms": 500, "turn": 3}, True, None),
        ({"contains": "x", "turn": 4}, False, None),
    ],
)
def test_an_assertion_fails_at_the_first_bot_reply_that_fails_it(
    check: dict[str, Any], passed: bool, turn: int | None
) -> None:
    result = evaluate(_assertion(**check), REPLIES)
    assert (result.passed, result.turn) == (passed, turn)
    assert result.assertion == _assertion(**check).describe()
    assert (result.detail is None) == passed


def test_bot_replies_are_numbered_from_the_run_and_join_their_parts() -> None:
    sim = "sim-r"

    def turn(seq: int, role: str, content: str, **extra: Any) -> TurnEvent:
        return TurnEvent.model_validate(
            {
                "simulation_id": sim,
                "seq": seq,
                "index": seq,
                "role": role,
                "content": content,
                "latency_ms": seq * 10,
                **extra,
            }
        )

    replies = bot_replies(
        [
            turn(3, "bot", "from history", from_history=True),
            turn(4, "user", "hi"),
            turn(5, "bot", "one", part=1, parts=2, following=["two"]),
            turn(6, "bot", "two", part=2, parts=2),
            turn(7, "user", "again"),
            turn(8, "bot", "three"),
        ]
    )
    assert replies == [BotReply(1, "one\ntwo", 50), BotReply(2, "three", 80)]


def _c(passed: bool | None) -> CriterionResult:
    return CriterionResult(criterion="c", passed=passed, reasoning="r")


def _a(passed: bool) -> AssertionResult:
    return AssertionResult(assertion="a", passed=passed, turn=None if passed else 1)


def test_the_verdict_rules() -> None:
    assert verdict_of([_c(True)], [_a(True)], completed=True) == "pass"
    assert verdict_of([], [], completed=True) == "pass"
    assert verdict_of([_c(True), _c(False)], [], completed=True) == "fail"
    assert verdict_of([_c(None)], [_a(False)], completed=True) == "fail"
    assert verdict_of([_c(None), _c(True)], [_a(True)], completed=True) == "unjudged"
    assert verdict_of([_c(True)], [_a(True)], completed=False) == "fail"
    # The share of the judged criteria and the assertions that passed.
    assert score_of([_c(True), _c(False), _c(None)], [_a(True), _a(True)]) == 0.75
    assert score_of([_c(None)], []) is None
    assert score_of([], []) is None


CASE = Case(
    simulation_id="sim-j",
    criteria=["The bot greets the learner", "The bot teaches quantum gravity"],
    persona="A ten-year-old learner",
    goal="Learn animal names",
    transcript="User: hi\nBot: Hello!\n",
    seed=42,
)


def test_the_judge_prompt_has_the_persona_goal_transcript_and_criteria() -> None:
    system, user = judge_messages(CASE)
    assert system["role"] == "system"
    content = user["content"]
    for part in (CASE.persona, CASE.goal or "", CASE.transcript):
        assert part in content
    assert content.endswith(
        "The criteria:\n1. The bot greets the learner\n2. The bot teaches quantum gravity"
    )


def test_the_answer_is_matched_to_the_criteria_by_text_then_position() -> None:
    by_text = json.dumps(
        {
            "criteria": [
                {"criterion": CASE.criteria[1], "passed": False, "reasoning": "no physics"},
                {"criterion": CASE.criteria[0], "passed": True, "reasoning": "says Hello"},
            ]
        }
    )
    assert [(r.criterion, r.passed) for r in parse_verdicts(by_text, CASE.criteria)] == [
        (CASE.criteria[0], True),
        (CASE.criteria[1], False),
    ]
    reworded = json.dumps({"criteria": [{"criterion": "greets", "passed": True, "reasoning": "r"}]})
    results = parse_verdicts(reworded, CASE.criteria)
    assert [r.passed for r in results] == [None, None]  # never a made-up pass
    with pytest.raises(ValueError, match="not the verdicts"):
        parse_verdicts("I think it passed", CASE.criteria)


def _llm(handler: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://judge.test/v1",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


async def test_the_llm_judge_asks_for_structured_output_with_the_seed() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        verdicts = [
            {"criterion": c, "passed": i == 0, "reasoning": f"because {i}"}
            for i, c in enumerate(CASE.criteria)
        ]
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": json.dumps({"criteria": verdicts})}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20},
            },
        )

    verdicts = await LLMJudge(_llm(handler), model="judge-m", attempts=2).judge(CASE)
    assert seen[0]["response_format"] == RESPONSE_FORMAT
    assert (seen[0]["seed"], seen[0]["model"], seen[0]["temperature"]) == (42, "judge-m", 0)
    assert [(r.passed, r.reasoning) for r in verdicts.results] == [
        (True, "because 0"),
        (False, "because 1"),
    ]
    assert verdicts.usages == [TurnUsage(prompt_tokens=100, completion_tokens=20, model="judge-m")]
    assert verdicts.errors == []


async def test_a_failing_judge_llm_leaves_the_criteria_unjudged() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"error": {"message": "down"}})

    verdicts = await LLMJudge(_llm(handler), model="judge-m", attempts=2).judge(CASE)
    assert calls == 2
    assert verdicts.errors == ["http_500", "http_500"]
    assert [r.passed for r in verdicts.results] == [None, None]
    assert all("judge LLM failed" in r.reasoning for r in verdicts.results)


class _FakeLog:
    def __init__(self, events: list[SimulationEvent], judged: JudgedEvent | None = None) -> None:
        self.events = events
        self.judged = judged

    async def read_with_judgement(
        self, simulation_id: str, created_at: datetime
    ) -> LoggedSimulation:
        return LoggedSimulation(events=self.events, judged=self.judged)

    def published(self, judged: JudgedEvent) -> None:
        self.judged = self.judged or judged


def _simulation(
    ending: str, stop_reason: StopReason = "max_turns", **request: Any
) -> tuple[str, list[SimulationEvent]]:
    sim = new_simulation_id()
    body = {"simulation_id": sim, "bot_id": 1, "user_prompt": "hi", "persona": "p", **request}
    events: list[SimulationEvent] = [
        QueuedEvent(simulation_id=sim, seq=1, request=SimulationRequest.model_validate(body)),
        StartedEvent(simulation_id=sim, seq=2, conversation_id="c", user_simulator="scripted"),
        TurnEvent(simulation_id=sim, seq=3, index=0, role="user", content="hi", latency_ms=0),
        TurnEvent(simulation_id=sim, seq=4, index=1, role="bot", content="Hello!", latency_ms=5),
    ]
    if ending == "completed":
        events.append(
            CompletedEvent(
                simulation_id=sim,
                seq=5,
                stop_reason=stop_reason,
                transcript="",
                turn_count=1,
                duration_ms=5,
            )
        )
    else:
        events.append(
            FailedEvent(
                simulation_id=sim,
                seq=5,
                transcript="",
                error=ErrorInfo(code="bot_timeout", message="the bot did not answer"),
            )
        )
    return sim, events


async def _judge(
    events: list[SimulationEvent], judged: JudgedEvent | None = None
) -> tuple[JudgedEvent | None, list[JudgedEvent]]:
    published: list[JudgedEvent] = []

    async def publish(event: JudgedEvent) -> None:
        published.append(event)

    judging = Judging(
        log=_FakeLog(events, judged),
        judge=OfflineJudge(),
        prices={"m": ModelPrice(input=1, output=1)},
        metrics=JudgeMetrics(CollectorRegistry()),
    )
    ended = events[-1]
    assert isinstance(ended, CompletedEvent | FailedEvent)
    return await judging.handle(ended, publish), published


async def test_offline_judge_evaluates_assertions_and_never_passes_a_criterion() -> None:
    _, events = _simulation(
        "completed",
        criteria=["greets"],
        assertions=[{"contains": "Hello"}, {"contains": "Bye", "turn": 1}],
        suite_id="suite-1",
    )
    judged, published = await _judge(events)
    assert published == [judged]
    assert judged is not None
    assert judged.verdict == "fail"
    assert [c.reasoning for c in judged.criteria] == [UNJUDGED_OFFLINE]
    assert [(a.passed, a.turn) for a in judged.assertions] == [(True, None), (False, 1)]
    assert judged.score == 0.5
    assert (judged.judge_model, judged.usage, judged.suite_id) == (None, None, "suite-1")


async def test_a_simulation_judged_already_gets_no_second_verdict() -> None:
    sim, events = _simulation("completed", criteria=["greets"])
    first = JudgedEvent(simulation_id=sim, verdict="unjudged", score=None)
    judged, published = await _judge(events, first)
    assert (judged, published) == (None, [])


async def test_nothing_to_judge_publishes_nothing() -> None:
    _, events = _simulation("completed")
    assert await _judge(events) == (None, [])


async def test_a_failed_simulation_is_judged_fail_with_its_error() -> None:
    _, events = _simulation("failed", criteria=["greets"], assertions=[{"contains": "Hello"}])
    judged, _ = await _judge(events)
    assert judged is not None
    assert (judged.verdict, judged.simulation_status) == ("fail", "failed")
    assert judged.error == ErrorInfo(code="bot_timeout", message="the bot did not answer")
    assert judged.criteria[0].passed is None
    assert "simulation failed (bot_timeout)" in judged.criteria[0].reasoning


class _AskedJudge(OfflineJudge):
    """Fails the test if the judge LLM is asked."""

    async def judge(self, case: Case) -> CriteriaVerdicts:
        raise AssertionError(f"the judge LLM was asked about {case.simulation_id}")


async def test_a_simulation_that_spent_its_budget_is_not_sent_to_the_judge_llm() -> None:
    _, events = _simulation(
        "completed", "budget_exceeded", criteria=["greets"], assertions=[{"contains": "Hello"}]
    )
    published: list[JudgedEvent] = []

    async def publish(event: JudgedEvent) -> None:
        published.append(event)

    judging = Judging(
        log=_FakeLog(events, None),
        judge=_AskedJudge(),
        prices={},
        metrics=JudgeMetrics(CollectorRegistry()),
    )
    ended = events[-1]
    assert isinstance(ended, CompletedEvent)
    judged = await judging.handle(ended, publish)
    assert judged is not None
    assert judged.verdict == "unjudged"  # never a pass; the assertions still count
    assert judged.criteria[0].passed is None
    assert "budget was spent" in judged.criteria[0].reasoning
    assert judged.assertions[0].passed


async def test_a_log_read_without_the_end_goes_back_to_be_read_again() -> None:
    """The end came on the judge's queue before the log had it: acking would leave the
    simulation unjudged for good, so the delivery goes back (and is judged next time)."""
    _, events = _simulation("completed", criteria=["greets"])
    ended = events[-1]
    assert isinstance(ended, CompletedEvent)
    published: list[JudgedEvent] = []

    async def publish(event: JudgedEvent) -> None:
        published.append(event)

    log = _FakeLog(events[:-1])  # the log is behind: no terminal event yet
    judging = Judging(
        log=log,
        judge=OfflineJudge(),
        prices={},
        metrics=JudgeMetrics(CollectorRegistry()),
    )
    with pytest.raises(LogBehind):
        await judging.handle(ended, publish)
    assert published == []
    log.events = events  # the log caught up: the redelivery is judged
    judged = await judging.handle(ended, publish)
    assert judged is not None
    assert published == [judged]
