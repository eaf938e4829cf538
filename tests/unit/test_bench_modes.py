"""The bench's modes, its fakes' answers and its capacity search (no processes)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bench.__main__ import parse_args
from bench.capacity import search_capacity
from bench.drivers import _TypicalDriver
from bench.fakes import BOT_MODEL, JUDGE_MODEL, FakeApis, bot_reply, learner_reply
from bench.modes import CRITERION, LLM_BOT_TARGET, Modes
from bench.profile import own_time
from bench.report import cpu_per_event
from services.judge.case import Case
from services.judge.llm_judge import judge_messages, parse_verdicts


def test_the_ideal_is_the_chain_of_calls_or_the_capped_calls_through_the_cap() -> None:
    assert Modes().ideal_s(300, 5, 1.0) == pytest.approx(10.0)  # init, 5 bot, 4 user
    assert Modes(bot="llm").ideal_s(300, 5, 1.0) == pytest.approx(9.0)  # no initConversation
    assert Modes(judge=True).ideal_s(300, 5, 1.0) == pytest.approx(11.0)  # + the judge's call
    assert Modes(cap=1000).ideal_s(300, 5, 1.0) == pytest.approx(10.0)  # the cap never binds
    assert Modes(cap=50).ideal_s(300, 5, 1.0) == pytest.approx(36.0)  # 1800 calls, 50 at once
    assert Modes(bot="llm", cap=50, judge=True).ideal_s(300, 5, 1.0) == pytest.approx(31.0)


def test_each_mode_sends_and_configures_what_it_switches_on() -> None:
    assert "bot_target" not in Modes().body(3)
    assert Modes().env("http://f") == {}
    llm = Modes(bot="llm", judge=True, cap=50)
    body = llm.body(3)
    assert body["bot_target"] == LLM_BOT_TARGET
    assert body["bot_prompt"]
    assert body["criteria"] == [CRITERION]
    target = json.loads(llm.env("http://f")["CONVSIM_BOT_TARGETS"])[LLM_BOT_TARGET]
    assert target == target | {"kind": "openai_chat", "model": BOT_MODEL, "max_concurrency": 50}
    capped = json.loads(Modes(cap=50).env("http://f")["CONVSIM_BOT_TARGETS"])
    assert capped == {
        "default": {"kind": "robot_ai_lesson", "url": "http://f", "max_concurrency": 50}
    }
    assert llm.judge_env(300)["CONVSIM_JUDGE_MODEL"] == JUDGE_MODEL


def _chat(model: str, messages: list[dict[str, str]]) -> str:
    answer: dict[str, Any] = FakeApis._answer(
        "/v1/chat/completions", {"model": model, "messages": messages}
    )
    return str(answer["choices"][0]["message"]["content"])


def test_the_fake_llm_answers_the_bot_the_user_and_the_judge() -> None:
    chat = [{"role": "system", "content": "x"}, {"role": "user", "content": "hello"}]
    assert _chat(BOT_MODEL, chat) == bot_reply("hello")
    assert _chat("bench", chat) == learner_reply(1)
    case = Case(
        simulation_id="s",
        persona="p",
        goal=None,
        transcript="User: 1. not a criterion\nBot: hi\n",
        criteria=[CRITERION, "Second one."],
        seed=None,
    )
    content = _chat(JUDGE_MODEL, judge_messages(case))
    verdicts = parse_verdicts(content, case.criteria)
    assert [(v.criterion, v.passed) for v in verdicts] == [(CRITERION, True), ("Second one.", True)]


def _run(ratio: float, p99: float, errors: list[str] | None = None) -> dict[str, Any]:
    ours = {"ratio_to_ideal": ratio, "sse_delay": {"p99_ms": p99}}
    return {"ours": ours, "errors": errors or []}


def test_the_capacity_search_stops_at_the_first_step_that_misses_a_target() -> None:
    outcomes = {300: _run(1.1, 90), 400: _run(1.2, 240), 500: _run(1.3, 100), 600: _run(1, 1)}
    tried: list[int] = []

    def run(n: int) -> dict[str, Any]:
        tried.append(n)
        return outcomes[n]

    found = search_capacity([600, 300, 500, 400], run)
    assert tried == [300, 400, 500]
    assert found["capacity"] == 400
    assert [step["met"] for step in found["steps"]] == [True, True, False]
    assert search_capacity([300], lambda n: _run(1.0, 300))["capacity"] == 0
    assert search_capacity([300], lambda n: _run(1.0, 10, ["x"]))["capacity"] == 0


def test_cpu_per_event_sums_the_services_not_the_driver_or_the_fakes() -> None:
    processes = {
        "orchestrator-1": {"cpu_s": 1.0},
        "orchestrator-2": {"cpu_s": 1.0},
        "gateway": {"cpu_s": 0.5},
        "judge": {"cpu_s": 0.5},
        "rabbitmq": {"cpu_s": 1.0},
        "fakes": {"cpu_s": 9.0},
        "driver (this process)": {"cpu_s": 9.0},
    }
    assert cpu_per_event(processes, 1000)["total"] == pytest.approx(4.0)


def test_the_profile_counts_own_time_and_leaves_out_idle_pool_threads() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);run (b.py:2);encode (c.py:3) 6",
            "main (a.py:1);run (b.py:2) 2",
            "Thread._bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:81) 50",
            "_bootstrap (threading.py:1);WorkerThread.run (anyio/_backends/_asyncio.py:1);"
            "Queue.get (queue.py:171);Condition.wait (threading.py:327) 40",
        ]
    )
    assert own_time(raw) == (8, [("encode (c.py)", 6), ("run (b.py)", 2)])


@pytest.mark.parametrize("stack", ["floor", "floor-gateway"])
def test_the_floor_stacks_run_without_a_rate_limited_llm(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_args(["--stack", stack, "--orchestrators", "2"]).stack == stack
    assert parse_args([]).stack == "convsim"
    with pytest.raises(SystemExit) as refused:
        parse_args(["--stack", stack, "--llm-rpm", "600"])
    assert refused.value.code == 2
    assert f"--stack {stack} runs without --llm-rpm" in capsys.readouterr().err


def test_the_floor_stack_follows_like_a_typical_client_and_the_floor_gateway_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for client in ("typical", "typical-aiohttp"):
        assert parse_args(["--stack", "floor", "--client", client]).client == client
        with pytest.raises(SystemExit) as refused:
            parse_args(["--stack", "floor-gateway", "--client", client])
        assert refused.value.code == 2
        assert "runs the default workload only: the bench client" in capsys.readouterr().err


def test_the_floor_stack_runs_every_mode_and_the_floor_gateway_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    modes = ["--bot", "llm", "--judge", "--limits"]
    args = parse_args(["--stack", "floor", *modes])
    assert (args.bot, args.judge, args.limits) == ("llm", True, True)
    for mode in (["--judge"], ["--limits"], ["--bot", "llm"]):
        with pytest.raises(SystemExit) as refused:
            parse_args(["--stack", "floor-gateway", *mode])
        assert refused.value.code == 2
        assert "--stack floor-gateway runs the default workload only" in capsys.readouterr().err


async def test_the_typical_client_skips_keep_alives_between_events() -> None:
    """The gateway's keep-alive comment after an event with an id: httpx-sse 0.4 yields it
    as an event with no data, which the typical client must not parse."""
    simulation_id = "0190a0a0-0000-7000-8000-0000000000bb"

    def event(seq: int, kind: str) -> str:
        body = {"simulation_id": simulation_id, "seq": seq, "type": kind}
        body["timestamp"] = "2026-12-01T00:00:00+00:00"
        return f"id: {seq}\r\nevent: {kind}\r\ndata: {json.dumps(body)}\r\n\r\n"

    stream = event(1, "queued") + ": ping - 2026-12-01 00:00:15\r\n\r\n" + event(2, "cancelled")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"simulation_id": simulation_id})
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(base_url="http://gateway", transport=transport) as client:
        outcome = await _TypicalDriver(client).follow({})
    assert [e["type"] for e in outcome.events] == ["queued", "cancelled"]
    assert outcome.problem is None
