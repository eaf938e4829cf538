"""`convsim` against the real stack: run, watch, get, cancel, and their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes.bot_api import DOWN_BOT, GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import Stack
from tests.integration.processes import REPO
from tests.integration.stories import gated_waiting_on_second_reply

pytestmark = pytest.mark.integration


def convsim(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, with the gateway from CONVSIM_GATEWAY_URL."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        env={**os.environ, "CONVSIM_GATEWAY_URL": stack.gateway_url, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_prints_each_turn_and_exits_0_on_completed(stack: Stack, tmp_path: Path) -> None:
    persona = tmp_path / "persona.txt"
    persona.write_text("You are Mai, a cheerful learner. CLI persona 9b2e.", encoding="utf-8")
    done = convsim(
        stack,
        "run",
        "--bot-id",
        str(NORMAL_BOT),
        "--prompt",
        "sẵn sàng",
        "--max-turns",
        "2",
        "--persona",
        str(persona),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("simulation ")
    assert lines[1] == "User: sẵn sàng"
    assert lines[2].startswith("Bot: Bot reply 1 to: sẵn sàng (")
    assert lines[2].endswith(" ms)")
    assert lines[3].startswith("User: Learner line 1")
    assert lines[-1].startswith("completed: 2 bot replies")
    assert stack.llm.requests_with("CLI persona 9b2e")


def test_run_as_json_lines_and_a_failure_exits_non_zero(stack: Stack) -> None:
    failed = convsim(
        stack, "run", "--bot-id", str(DOWN_BOT), "--prompt", "hi", "--max-turns", "1", "--json"
    )
    assert failed.returncode == 1, failed.stderr
    events = [json.loads(line) for line in failed.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "failed"
    assert events[-1]["error"]["code"] == "bot_http_error"


async def test_watch_get_and_cancel(stack: Stack, client: httpx.AsyncClient) -> None:
    simulation_id = await create_simulation(client, request_body(GATED_BOT, max_turns=3))
    await EventWatcher(client, simulation_id).wait_for(gated_waiting_on_second_reply)

    shown = convsim(stack, "get", simulation_id, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["status"] == "running"

    cancelled = convsim(stack, "cancel", simulation_id)
    assert cancelled.returncode == 0, cancelled.stdout
    watched = convsim(stack, "watch", simulation_id)
    assert watched.returncode == 2  # cancelled
    assert watched.stdout.splitlines()[-1] == "cancelled"
    again = convsim(stack, "cancel", simulation_id)
    assert again.returncode == 1
    assert "409" in again.stdout


def test_an_unreachable_gateway_is_said_plainly(stack: Stack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "get", "x", "--gateway", "http://127.0.0.1:9"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "cannot reach the gateway" in result.stderr


def test_run_with_a_goal_and_a_script(stack: Stack, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    # Quoted: in YAML an unquoted " #" starts a comment.
    script.write_text('- What is con mèo in English?\n- null\n- "Thank you! ###STOP###"\n')
    done = convsim(
        stack,
        "run",
        "--bot-id",
        str(NORMAL_BOT),
        "--prompt",
        "sẵn sàng",
        "--max-turns",
        "6",
        "--goal",
        "Learn the word for a cat. CLI goal 5d1a.",
        "--script",
        str(script),
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    users = [e["content"] for e in events if e["type"] == "turn" and e["role"] == "user"]
    assert users[0] == "sẵn sàng"
    assert users[1] == "What is con mèo in English?"
    assert users[2].startswith("Learner line")  # null: the simulated user speaks
    assert users[3] == "Thank you!"  # the stop phrase is stripped, then the talk ends
    assert events[1]["type"] == "started"
    assert events[1]["goal"] == "Learn the word for a cat. CLI goal 5d1a."
    assert events[-1]["type"] == "completed"
    assert events[-1]["stop_reason"] == "user_ended"
    assert stack.llm.requests_with("CLI goal 5d1a")


def test_a_script_that_is_not_a_list_is_refused_before_anything_runs(
    stack: Stack, tmp_path: Path
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("opening: hello\n")
    refused = convsim(stack, "run", "--bot-id", str(NORMAL_BOT), "--script", str(script))
    assert refused.returncode == 2
    assert "a script is a list of messages" in refused.stderr


def test_run_two_prompts_against_each_other(stack: Stack, tmp_path: Path) -> None:
    """The built-in `llm` target: the bot is a prompt on the OpenAI-compatible endpoint."""
    bot_prompt = tmp_path / "bot.txt"
    bot_prompt.write_text("You are a patient maths tutor. CLI bot prompt 77c1.", encoding="utf-8")
    done = convsim(
        stack,
        "run",
        "--bot-target",
        "llm",
        "--bot-prompt",
        str(bot_prompt),
        "--prompt",
        "What is 2 + 2?",
        "--max-turns",
        "2",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "User: What is 2 + 2?"
    assert lines[2].startswith("Bot: ")
    assert lines[-1].startswith("completed: 2 bot replies")
    bot_calls = stack.llm.requests_with("CLI bot prompt 77c1")
    assert len(bot_calls) == 2
    assert bot_calls[0]["messages"][0] == {
        "role": "system",
        "content": "You are a patient maths tutor. CLI bot prompt 77c1.",
    }
    assert bot_calls[0]["messages"][1] == {"role": "user", "content": "What is 2 + 2?"}
