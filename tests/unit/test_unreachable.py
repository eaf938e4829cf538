"""A bot or an LLM that is down is told from one that is slow, through the real aiohttp
transports: a refused port and an unknown host are ``*_unreachable``, a connect that gets no
answer in time (a listener whose backlog is full) stays ``*_timeout``. The judge's LLM client,
as its composition root builds it, tells them apart the same way."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, AsyncExitStack, contextmanager, suppress

import pytest

from services.common.openai_client import build_openai_client
from services.judge.bootstrap import criteria_judge
from services.judge.case import Case
from services.judge.settings import JudgeSettings
from services.orchestrator.bots.robot_ai_lesson import RobotAiLessonBot
from services.orchestrator.bots.transport import build_bot_http_client
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.user_simulator import LLMUserSimulator

CONNECT_TIMEOUT_S = 0.5


@contextmanager
def refused_url() -> Iterator[str]:
    """A loopback port where nothing listens (bound, then closed)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    yield f"http://127.0.0.1:{port}"


@contextmanager
def unresolvable_url() -> Iterator[str]:
    yield "http://nonexistent.invalid"  # RFC 6761: never resolves


@contextmanager
def silent_url() -> Iterator[str]:
    """A listener that never accepts, its backlog filled: a new connect gets no SYN-ACK, so
    the client's connect timeout fires (a genuine timeout, not a refusal)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


CASES = [
    pytest.param(refused_url, "unreachable", "connection refused", id="refused"),
    pytest.param(unresolvable_url, "unreachable", "host name not resolved", id="unresolvable"),
    pytest.param(silent_url, "timeout", "", id="connect-timeout"),
]


async def _failure(call: Awaitable[object]) -> SimulationFailure:
    with pytest.raises(SimulationFailure) as caught:
        await call
    return caught.value


@pytest.mark.parametrize(("target", "kind", "reason"), CASES)
async def test_the_bot_client_tells_down_from_slow(
    target: Callable[[], AbstractContextManager[str]], kind: str, reason: str
) -> None:
    http = build_bot_http_client(
        read_timeout_s=5, connect_timeout_s=CONNECT_TIMEOUT_S, max_connections=4
    )
    try:
        with target() as url:
            bot = RobotAiLessonBot(http, base_url=url, max_reply_bytes=10_000)
            failure = await _failure(bot.init_conversation(1, "c1", {}))
    finally:
        await http.aclose()
    assert failure.code == f"bot_{kind}", failure.message
    assert failure.retryable
    assert reason in failure.message


@pytest.mark.parametrize(("target", "kind", "reason"), CASES)
async def test_the_llm_client_tells_down_from_slow(
    target: Callable[[], AbstractContextManager[str]], kind: str, reason: str
) -> None:
    with target() as url:
        client = build_openai_client(
            api_key="sk-unit",
            base_url=f"{url}/v1",
            read_timeout_s=5,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            max_connections=4,
        )
        try:
            user = LLMUserSimulator(client, default_model="m")
            failure = await _failure(user.next_message("persona", [("bot", "hi")], None))
        finally:
            await client.close()
    assert failure.code == f"llm_{kind}", failure.message
    assert failure.retryable
    assert reason in failure.message


@pytest.mark.parametrize(
    ("target", "kind"), [pytest.param(*case.values[:2], id=case.id) for case in CASES]
)
async def test_the_judges_llm_client_tells_down_from_slow(
    target: Callable[[], AbstractContextManager[str]], kind: str
) -> None:
    """The kind is what ``convsim_judge_llm_errors_total{error}`` counts."""
    with target() as url:
        settings = JudgeSettings(
            judge="llm",
            openai_api_key="sk-unit",
            openai_base_url=f"{url}/v1",
            connect_timeout_s=CONNECT_TIMEOUT_S,
            judge_timeout_s=5,
            judge_llm_attempts=1,
        )
        async with AsyncExitStack() as stack:
            judge = await criteria_judge(stack, settings)
            verdicts = await judge.judge(
                Case(
                    simulation_id="s1",
                    criteria=["polite"],
                    persona="p",
                    goal=None,
                    transcript="User: hi\nBot: hello",
                )
            )
    assert judge.kind == "llm"
    assert verdicts.errors == [kind]
    assert [result.passed for result in verdicts.results] == [None]  # unjudged, never passed
