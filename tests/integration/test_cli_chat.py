"""`convsim chat` against the real stack: a person's lines through the gateway's conversation
routes, with stdin piped (as a script or a test would drive it)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.conftest import Stack
from tests.integration.processes import REPO, default_sigint

pytestmark = pytest.mark.integration


def convsim_chat(stack: Stack, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "chat", *args],
        cwd=REPO,
        env={**os.environ, "CONVSIM_GATEWAY_URL": stack.gateway_url, "COLUMNS": "300"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def conversation_id_of(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("conversation "), stdout
    return first.split()[1].rstrip(".")


def test_chat_sends_lines_takes_a_suggestion_and_closes_at_end_of_input(
    stack: Stack, tmp_path: Path
) -> None:
    persona = tmp_path / "persona.txt"
    persona.write_text("You are Lan, a curious learner. CLI chat persona 4f3a.", encoding="utf-8")
    done = convsim_chat(
        stack,
        # hello; a suggestion sent as is (empty line); a suggestion replaced by a typed line.
        "hello\n/suggest\n\n/suggest\nwhat is a cat?\n",
        "--bot-id",
        str(NORMAL_BOT),
        "--persona",
        str(persona),
        "--goal",
        "learn animal names",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    first = "Learner line 1 after: Bot reply 1 to: hello"
    second = f"Learner line 2 after: Bot reply 2 to: {first}"
    lines = [line for line in done.stdout.splitlines()[1:] if not line.startswith("(empty")]
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "User: hello",
        "Bot: Bot reply 1 to: hello",
        f"Suggestion: {first}",
        f"User: {first}",
        f"Bot: Bot reply 2 to: {first}",
        f"Suggestion: {second}",
        "User: what is a cat?",
        "Bot: Bot reply 3 to: what is a cat?",
    ]
    assert lines[-1].startswith("completed: 3 bot replies in")
    assert lines[-1].endswith("(closed)")
    # Both suggestions came from the simulated user's LLM, with the persona and the goal.
    asked = stack.llm.requests_with("CLI chat persona 4f3a")
    assert len(asked) == 2
    assert "learn animal names" in asked[0]["messages"][0]["content"]

    conversation_id = conversation_id_of(done.stdout)
    view = httpx.get(f"{stack.gateway_url}/v1/conversations/{conversation_id}", timeout=30).json()
    assert view["status"] == "completed"
    assert view["stop_reason"] == "closed"
    assert [(t["role"], t["content"]) for t in view["turns"]][-2:] == [
        ("user", "what is a cat?"),
        ("bot", "Bot reply 3 to: what is a cat?"),
    ]


def test_chat_with_a_prompted_bot_and_quit(stack: Stack, tmp_path: Path) -> None:
    bot_prompt = tmp_path / "bot.txt"
    bot_prompt.write_text("You are a terse tutor. CLI chat bot prompt 3c9d.", encoding="utf-8")
    done = convsim_chat(
        stack,
        "What is 2 + 2?\nAnd [/b] [bold]3 + 3?\n/quit\nnever sent\n",
        "--bot-target",
        "llm",
        "--bot-prompt",
        str(bot_prompt),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split(" (")[0] for line in done.stdout.splitlines()]
    assert lines[1] == "User: What is 2 + 2?"
    assert lines[2] == "Bot: Learner line 1 after: What is 2 + 2?"  # the fake answers alike
    assert lines[3] == "User: And [/b] [bold]3 + 3?"  # text, not markup
    assert done.stdout.splitlines()[-1].startswith("completed: 2 bot replies")
    assert done.stdout.splitlines()[-1].endswith("(closed)")
    assert "never sent" not in done.stdout
    bot_calls = stack.llm.requests_with("CLI chat bot prompt 3c9d")
    assert len(bot_calls) == 2
    assert bot_calls[1]["messages"][-1] == {"role": "user", "content": "And [/b] [bold]3 + 3?"}
    conversation_id = conversation_id_of(done.stdout)
    view = httpx.get(f"{stack.gateway_url}/v1/conversations/{conversation_id}", timeout=30).json()
    assert (view["status"], view["stop_reason"]) == ("completed", "closed")


def test_chat_refused_by_the_gateway_exits_non_zero(stack: Stack) -> None:
    refused = convsim_chat(stack, "hello\n", "--bot-target", "no-such-target")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith("4")


def test_chat_stops_when_the_conversation_ends_by_itself(stack: Stack) -> None:
    """At max_turns the conversation completes; the next line is refused and chat ends."""
    done = convsim_chat(
        stack, "hello\nanyone there?\nnever sent\n", "--bot-id", str(NORMAL_BOT), "--max-turns", "1"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].startswith("Bot: Bot reply 1 to: hello")
    assert lines[3].startswith("409 ")
    assert lines[-1].startswith("completed: 1 bot replies")
    assert lines[-1].endswith("(max_turns)")
    assert "never sent" not in done.stdout


def test_ctrl_c_closes_the_conversation(stack: Stack) -> None:
    """SIGINT (Ctrl-C) while waiting for the person's next line: closed, exit 0."""
    with typing_in_chat(stack, NORMAL_BOT, "hello\n", "Bot: Bot reply 1 to: hello") as (
        chat,
        printed,
    ):
        chat.send_signal(signal.SIGINT)  # stdin stays open: it is blocked reading the next line
        rest, _ = exited(chat)
    assert chat.returncode == 0, printed + rest
    assert rest.splitlines()[-1].startswith("completed: 1 bot replies")
    assert rest.splitlines()[-1].endswith("(closed)")
    view = httpx.get(
        f"{stack.gateway_url}/v1/conversations/{conversation_id_of(printed)}", timeout=30
    ).json()
    assert (view["status"], view["stop_reason"]) == ("completed", "closed")


@contextlib.contextmanager
def typing_in_chat(
    stack: Stack, bot_id: int, lines: str, until: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`convsim chat` running, its stdin left open after ``lines``: the process and what it
    printed up to ``until``. Killed on the way out if it still runs (a failed test)."""
    chat = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "chat", "--bot-id", str(bot_id)],
        cwd=REPO,
        env={**os.environ, "CONVSIM_GATEWAY_URL": stack.gateway_url, "COLUMNS": "300"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert chat.stdin is not None
        assert chat.stdout is not None
        chat.stdin.write(lines)
        chat.stdin.flush()
        yield chat, read_until(chat.stdout, until, timeout_s=60)
    finally:
        if chat.poll() is None:
            chat.kill()
        chat.communicate()


def chat_waiting_for_a_held_reply(
    stack: Stack,
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`convsim chat` with the gated bot: its first reply came, its second is held."""
    return typing_in_chat(stack, GATED_BOT, "hello\nstill there?\n", "User: still there?")


def test_ctrl_c_while_a_reply_is_awaited_closes_after_it(stack: Stack) -> None:
    """SIGINT while the bot's reply is held: the wait ends at once and the close is sent; the
    conversation closes after answering (the reply is shown), exit 0."""
    with chat_waiting_for_a_held_reply(stack) as (chat, printed):
        assert chat.stdout is not None
        chat.send_signal(signal.SIGINT)
        printed += read_until(chat.stdout, "closing", timeout_s=60)  # the reply is still held
        stack.bot.release(conversation_id_of(printed))
        rest, errors = exited(chat)
    assert chat.returncode == 0, printed + rest + errors
    assert "Bot: Bot reply 2 to: still there?" in rest
    assert rest.splitlines()[-1].startswith("completed: 2 bot replies")
    assert rest.splitlines()[-1].endswith("(closed)")


def test_a_second_ctrl_c_stops_waiting_for_the_close(stack: Stack) -> None:
    """A second SIGINT while the close waits for the held reply: chat leaves (130); the close
    was sent, so the conversation still ends closed once the reply comes."""
    with chat_waiting_for_a_held_reply(stack) as (chat, printed):
        assert chat.stdout is not None
        chat.send_signal(signal.SIGINT)
        printed += read_until(chat.stdout, "closing", timeout_s=60)
        chat.send_signal(signal.SIGINT)
        rest, errors = exited(chat)
    assert chat.returncode == 130, printed + rest + errors
    assert "stopped waiting for conversation" in rest
    conversation_id = conversation_id_of(printed)
    stack.bot.release(conversation_id)
    events = f"{stack.gateway_url}/v1/simulations/{conversation_id}/events"
    with httpx.stream("GET", events, timeout=httpx.Timeout(30, read=60)) as stream:
        for _ in stream.iter_lines():
            pass  # the gateway ends the stream after the conversation's end
    view = httpx.get(f"{stack.gateway_url}/v1/conversations/{conversation_id}", timeout=30).json()
    assert (view["status"], view["stop_reason"]) == ("completed", "closed")


def exited(chat: subprocess.Popen[str], timeout_s: float = 60) -> tuple[str, str]:
    """What chat printed until it exited; if it does not within the bound, the test fails with
    where it waits (py-spy's dump of its stack)."""
    try:
        return chat.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            where = subprocess.run(
                [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(chat.pid)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            chat.kill()
        out, errors = chat.communicate()
        pytest.fail(
            f"chat did not exit within {timeout_s} s; it waits in:\n{where.stdout}{where.stderr}"
            f"\nstdout: {out}\nstderr: {errors}"
        )


def read_until(stream: IO[str], text: str, timeout_s: float) -> str:
    """What the process printed up to ``text`` (read from the pipe unbuffered, bounded)."""
    deadline = time.monotonic() + timeout_s
    printed = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream.fileno(), selectors.EVENT_READ)
        while text.encode() not in printed:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in: {printed!r}"
            if selector.select(left):
                chunk = os.read(stream.fileno(), 65536)
                assert chunk, f"ended before {text!r}: {printed!r}"
                printed += chunk
    return printed.decode()
