"""A suite the way a team runs it: a suite file, `convsim suite run` (a real CLI process), the
real gateway (suite conductor), orchestrator and judge on the real broker, the fake bot and the
fake OpenAI (answering the judge's structured verdicts) on loopback. Verdicts, pass^k, the exit
code, a JUnit file read back by a parser, an HTML report opened in Chromium, the judge's tokens
and cost against what the fake counted, and the judge SIGKILLed mid-suite."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from junitparser import Failure, JUnitXml
from playwright.async_api import Browser

from services.judge.llm_judge import SYSTEM_PROMPT
from tests.fakes.bot_api import NORMAL_BOT
from tests.fakes.openai_api import JUDGE_SLOW_MODEL, FakeOpenAI, judge_answer
from tests.integration.browser import chromium, open_page
from tests.integration.client import create_suite
from tests.integration.conftest import Stack
from tests.integration.judge_stack import JUDGE_MODEL, PRICES, JudgeStack, judge_stack_of
from tests.integration.log_tap import eventually, logged_verdicts
from tests.integration.processes import REPO

pytestmark = pytest.mark.integration

__all__ = ["chromium"]  # the fixture, imported for pytest

CLI_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def suite_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JudgeStack]:
    with judge_stack_of(stack, tmp_path_factory, "orchestrator-suites") as judged:
        yield judged


@pytest.fixture
async def http(suite_stack: JudgeStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=suite_stack.url, timeout=30) as client:
        yield client


def suite_file(path: Path, marker: str) -> Path:
    """Three scenarios x 2: one passes, one fails a criterion, one fails an assertion."""
    path.write_text(
        f"""\
name: e2e-{marker}
repeat: 2
concurrency: 3
scenarios:
  - name: passes
    bot: {{bot_id: {NORMAL_BOT}}}
    user: {{persona: "A learner {marker}", goal: Say hello, opening: hello, script: [more]}}
    max_turns: 2
    criteria: [The bot answers every message]
    assertions: [{{contains: Bot reply}}]
  - name: fails-a-criterion
    bot: {{bot_id: {NORMAL_BOT}}}
    user: {{persona: "A learner {marker}", opening: hello, script: [more]}}
    max_turns: 2
    criteria: [The bot answers every message, The bot does the impossible]
  - name: fails-an-assertion
    bot: {{bot_id: {NORMAL_BOT}}}
    user: {{persona: "A learner {marker}", opening: hello, script: [more]}}
    max_turns: 2
    assertions: [{{contains: Bot reply}}, {{turn: 2, contains: never said}}]
""",
        encoding="utf-8",
    )
    return path


def convsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def test_a_suite_from_its_file_to_verdicts_reports_and_exit_code(
    suite_stack: JudgeStack, http: httpx.AsyncClient, chromium: Browser, tmp_path: Path
) -> None:
    judge = suite_stack.judge("judge-suites")
    marker = uuid.uuid4().hex[:8]
    junit, html, report = tmp_path / "junit.xml", tmp_path / "report.html", tmp_path / "r.json"
    run = await asyncio.to_thread(
        convsim,
        "suite",
        "run",
        str(suite_file(tmp_path / "suite.yaml", marker)),
        "--gateway",
        suite_stack.url,
        "--junit",
        str(junit),
        "--html",
        str(html),
        "--json",
        str(report),
    )
    assert run.returncode == 1, run.stdout + run.stderr  # two scenarios fail

    # The server's view: every member judged, 2 of 6 passed, 1 of 3 scenarios every time.
    summary = json.loads(report.read_text(encoding="utf-8"))
    suite_id = summary["suite_id"]
    suite = (await http.get(f"/v1/suites/{suite_id}")).json()
    assert suite["status"] == "completed"
    assert suite["counts"] == {
        "members": 6,
        "waiting": 0,
        "running": 0,
        "completed": 6,
        "failed": 0,
        "cancelled": 0,
        "judged": 6,
        "passed": 2,
    }
    assert suite["pass_rate"] == pytest.approx(2 / 6)
    assert suite["pass_hat_k"] == pytest.approx(1 / 3)
    verdicts = {s["name"]: [r["verdict"] for r in s["runs"]] for s in suite["scenarios"]}
    assert verdicts == {
        "passes": ["pass", "pass"],
        "fails-a-criterion": ["fail", "fail"],
        "fails-an-assertion": ["fail", "fail"],
    }
    members = [r["simulation_id"] for s in suite["scenarios"] for r in s["runs"]]
    assert len(set(members)) == 6

    # Exactly one verdict per member in the event log.
    logged = await logged_verdicts(suite_stack.isolated.broker.amqp_url, set(members))
    assert Counter(v.simulation_id for v in logged) == dict.fromkeys(members, 1)

    # Tokens and cost: the judge's, as the fake LLM counted them (the bot and the user are not
    # LLMs here), make the suite's spent_usd.
    price = PRICES[JUDGE_MODEL]
    expected_cost = 0.0
    calls = [
        call
        for call in suite_stack.llm.requests_with(marker)
        if call["messages"][0]["content"] == SYSTEM_PROMPT
    ]
    assert len(calls) == 4  # the scenarios with criteria; assertions need no LLM
    for call in calls:
        prompt, completion = FakeOpenAI.usage_for(call["messages"], judge_answer(call["messages"]))
        expected_cost += (prompt * price["input"] + completion * price["output"]) / 1e6
    member_costs = []
    for simulation_id in members:
        view = (await http.get(f"/v1/simulations/{simulation_id}")).json()
        assert view["request"]["suite_id"] == suite_id
        usage = view["judgement"]["usage"]
        member_costs.append(0.0 if usage is None else usage["cost_usd"])
    assert sum(member_costs) == pytest.approx(expected_cost, abs=1e-7)
    assert suite["spent_usd"] == pytest.approx(expected_cost, abs=1e-6)
    assert summary["pass_rate"] == pytest.approx(2 / 6)

    # JUnit: one testcase per scenario x repeat; failures name the criterion or the assertion.
    cases = [case for test_suite in JUnitXml.fromfile(str(junit)) for case in test_suite]
    assert len(cases) == 6
    failures = {
        case.name: " ".join(r.message or "" for r in case.result if isinstance(r, Failure))
        for case in cases
        if not case.is_passed
    }
    assert len(failures) == 4
    assert all(
        "The bot does the impossible" in message
        for name, message in failures.items()
        if "fails-a-criterion" in name
    )
    assert all(
        "never said" in message
        for name, message in failures.items()
        if "fails-an-assertion" in name
    )

    # HTML: opened offline, the failing turn is there and marked.
    page = await open_page(chromium, html.as_uri())
    failing = page.page.locator("li.turn.failing")
    assert await failing.count() == 2  # bot reply 2 of each run of fails-an-assertion
    assert "Bot reply 2" in (await failing.first.inner_text())
    page.assert_no_errors()
    await page.page.context.close()

    # A gate at 30 %: the same suite, watched again, now passes.
    gated = await asyncio.to_thread(
        convsim, "suite", "watch", suite_id, "--gateway", suite_stack.url, "--fail-under", "0.3"
    )
    assert gated.returncode == 0, gated.stdout + gated.stderr
    judge.stop()


async def test_a_judge_killed_mid_suite_leaves_no_member_unjudged_or_judged_twice(
    suite_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    slow = {"CONVSIM_JUDGE_MODEL": JUDGE_SLOW_MODEL, "CONVSIM_JUDGE_CONCURRENCY": "1"}
    judge = suite_stack.judge("judge-killed-mid-suite", **slow)
    body: dict[str, Any] = {
        "name": "judge-killed",
        "repeat": 8,
        "concurrency": 4,
        "scenarios": [
            {
                "name": "kind",
                "bot": {"bot_id": NORMAL_BOT},
                "user": {"opening": "hello", "script": ["more"]},
                "max_turns": 2,
                "criteria": ["The bot answers every message"],
            }
        ],
    }
    suite_id = await create_suite(http, body)

    async def judged_between(low: int, high: int) -> bool:
        counts = (await http.get(f"/v1/suites/{suite_id}")).json()["counts"]
        return low <= counts["judged"] < high

    await eventually(lambda: judged_between(1, 8), timeout_s=60, what="a first verdict")
    judge.stop(signal.SIGKILL)
    assert await judged_between(0, 8), "the judge was killed after the suite ended"
    suite_stack.judge("judge-after-the-kill", **slow)

    async def completed() -> bool:
        return (await http.get(f"/v1/suites/{suite_id}")).json()["status"] == "completed"

    await eventually(completed, timeout_s=90, what="the suite's completion")
    suite = (await http.get(f"/v1/suites/{suite_id}")).json()
    assert suite["counts"]["judged"] == suite["counts"]["passed"] == 8
    members = {r["simulation_id"] for s in suite["scenarios"] for r in s["runs"]}
    logged = await logged_verdicts(suite_stack.isolated.broker.amqp_url, members)
    assert Counter(v.simulation_id for v in logged) == dict.fromkeys(members, 1)
