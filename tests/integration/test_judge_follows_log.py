"""The judge follows the event log once instead of reading it back for every ended
simulation (real broker, real judge, gateway and orchestrator processes): judging N
simulations that end together reads about N times their events, not N squared; a judge started after
its simulations began reads them back from the log and still judges each exactly once; a
replica that starts later knows, from following the log, what another one judged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.judge.memory import Recall
from tests.fakes.bot_api import NORMAL_BOT
from tests.fakes.server import free_port
from tests.integration.client import create_simulation, request_body
from tests.integration.conftest import Stack
from tests.integration.judge_stack import JudgeStack, judge_stack_of
from tests.integration.log_tap import (
    eventually,
    logged_verdicts,
    raw_logged_events,
    redeliver_ending,
)
from tests.integration.processes import ServiceProcess, wait_until

pytestmark = pytest.mark.integration

TOGETHER = 40
ASSERTED = request_body(NORMAL_BOT, max_turns=1, assertions=[{"contains": "Bot"}])
"""A one-reply simulation the offline judge can give a verdict on (its assertion)."""


@pytest.fixture(scope="module")
def judge_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JudgeStack]:
    with judge_stack_of(stack, tmp_path_factory, "orchestrator-follows") as judged:
        yield judged


@pytest.fixture
async def http(judge_stack: JudgeStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=judge_stack.url, timeout=60) as client:
        yield client


async def judge_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as plain:
        text = (await plain.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def offline_judge(judge_stack: JudgeStack, name: str, **env: str) -> tuple[ServiceProcess, int]:
    """A judge without an LLM (assertions only), and the port of its metrics."""
    port = free_port()
    judge = judge_stack.judge(
        name, CONVSIM_JUDGE="offline", CONVSIM_JUDGE_METRICS_PORT=str(port), **env
    )
    return judge, port


def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(value for (sample, _), value in metrics.items() if sample == name)


async def all_judged(amqp_url: str, ids: list[str], timeout_s: float = 90) -> None:
    async def judged() -> bool:
        return len({j.simulation_id for j in await logged_verdicts(amqp_url, set(ids))}) == len(ids)

    await eventually(judged, timeout_s=timeout_s, what=f"verdicts on {len(ids)} simulations")


async def test_judging_simulations_that_end_together_reads_the_log_about_once(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    judge, port = offline_judge(judge_stack, "judge-together")
    ids = list(await asyncio.gather(*(create_simulation(http, ASSERTED) for _ in range(TOGETHER))))
    amqp_url = judge_stack.isolated.broker.amqp_url
    await all_judged(amqp_url, ids)
    logged = await logged_verdicts(amqp_url, set(ids))
    assert sorted(j.simulation_id for j in logged) == sorted(ids)  # each exactly once
    assert {j.verdict for j in logged} == {"pass"}
    metrics = await judge_metrics(port)
    read = total(metrics, "convsim_judge_log_messages_read_total")
    per_simulation = len(await raw_logged_events(amqp_url, ids[0])) + 1  # and its verdict
    # Read back per simulation, each of N reads would cross all N simulations.
    assert read < TOGETHER * TOGETHER, f"the judge read {read} messages of the log"
    assert read <= 3 * TOGETHER * per_simulation, f"the judge read {read} messages of the log"
    assert total(metrics, "convsim_judge_log_lookups_total") == 0
    assert total(metrics, "convsim_judge_verdicts_total") == TOGETHER
    judge.stop()


async def test_a_judge_started_after_its_simulations_began_reads_them_back_and_judges_once(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    body = request_body(NORMAL_BOT, max_turns=1, criteria=["The bot answers"])
    ids = [await create_simulation(http, body) for _ in range(5)]
    amqp_url = judge_stack.isolated.broker.amqp_url

    async def all_ended() -> bool:
        for simulation_id in ids:
            status = (await http.get(f"/v1/simulations/{simulation_id}")).json()["status"]
            if status != "completed":
                return False
        return True

    await eventually(all_ended, timeout_s=60, what="the simulations to end with no judge")
    late, port = offline_judge(
        judge_stack,
        "judge-late",
        CONVSIM_JUDGE_LOOKBACK_S="0",  # it follows the log from now: they began before
        # A stream read from a time starts at the chunk holding it, which may hold their
        # first events too: with room for one simulation, the others are read back for sure.
        CONVSIM_JUDGE_MEMORY_SIMULATIONS="1",
    )
    await all_judged(amqp_url, ids, timeout_s=60)
    logged = await logged_verdicts(amqp_url, set(ids))
    assert sorted(j.simulation_id for j in logged) == sorted(ids)  # each exactly once
    metrics = await judge_metrics(port)
    lookups = ("convsim_judge_log_lookups_total", (("reason", Recall.UNKNOWN.value),))
    assert (metrics.get(lookups) or 0) >= len(ids) - 1
    late.stop()

    # A judge that starts now follows the log from before them (its look-back): it saw the
    # verdicts, so a redelivered ending is skipped without reading the log back.
    replica, port = offline_judge(judge_stack, "judge-replica")
    await redeliver_ending(amqp_url, ids[0])  # as after a judge that died before its ack
    wait_until(
        lambda: f"simulation {ids[0]} was judged already" in replica.log_text(),
        timeout_s=30,
        what="the replica to take the redelivery",
    )
    assert len(await logged_verdicts(amqp_url, {ids[0]})) == 1
    assert total(await judge_metrics(port), "convsim_judge_log_lookups_total") == 0
    replica.stop()


async def test_a_judge_whose_log_connection_is_closed_follows_on_and_judges_each_once(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    judge, port = offline_judge(judge_stack, "judge-reconnected")
    amqp_url = judge_stack.isolated.broker.amqp_url
    before = [await create_simulation(http, ASSERTED) for _ in range(5)]
    await all_judged(amqp_url, before, timeout_s=60)
    broker = judge_stack.isolated.broker
    names: list[str] = []

    async def log_connection() -> bool:
        names.extend(broker.admin.connections(broker.vhost, "judge-log", judge.process.pid))
        return bool(names)

    await eventually(log_connection, timeout_s=30, what="the judge's log connection")
    broker.admin.force_close(names[0])
    wait_until(
        lambda: "following convsim.events.log again" in judge.log_text(),
        timeout_s=60,
        what="the judge to follow the log again",
    )
    after = [await create_simulation(http, ASSERTED) for _ in range(5)]
    await all_judged(amqp_url, after, timeout_s=60)
    logged = await logged_verdicts(amqp_url, set(before + after))
    assert sorted(j.simulation_id for j in logged) == sorted(before + after)  # each once
    # It followed on from where it was: nothing was read back from the log.
    assert total(await judge_metrics(port), "convsim_judge_log_lookups_total") == 0
    judge.stop()
