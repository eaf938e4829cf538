"""``python -m bench.clients``: the CPU one call costs the orchestrator's HTTP clients.

Starts the fakes, then makes ``--n`` calls at once (``--rounds`` times) through the
orchestrator's own bot API client (one pooled httpx client) and LLM client (one AsyncOpenAI),
and through a bare aiohttp session for comparison, and prints the CPU milliseconds per call
this process spent. That is a floor for what a simulation costs the orchestrator, whatever
the rest of its code does: W1 makes 6 bot calls and 4 LLM calls per simulation.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bench.processes import Process, free_port
from services.orchestrator.bot_api import WEBHOOK_PATH, BotApiClient, build_bot_http_client
from services.orchestrator.user_simulator import (
    LLMUserSimulator,
    TranscriptLine,
    build_openai_client,
)

__all__ = ["main"]

LINES: list[TranscriptLine] = [
    ("user", "sẵn sàng"),
    ("bot", "Hello! What colour is the sky?"),
    ("user", "Blue!"),
    ("bot", "Great. Can you say 'meow'?"),
]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(
    name: str, call: Callable[[int], Awaitable[object]], n: int, rounds: int
) -> None:
    await asyncio.gather(*(call(i) for i in range(n)))  # warm: connections open
    cpu, wall = _cpu_s(), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(call(i) for i in range(n)))
    per_call_ms = (_cpu_s() - cpu) / (n * rounds) * 1000
    print(f"{name:<34} {per_call_ms:6.3f} ms CPU per call   ({time.perf_counter() - wall:.1f} s)")


async def _run(url: str, n: int, rounds: int) -> None:
    http = build_bot_http_client(read_timeout_s=60, connect_timeout_s=10, max_connections=n + 10)
    llm = build_openai_client(
        api_key="bench-not-a-key",
        base_url=f"{url}/v1",
        read_timeout_s=60,
        connect_timeout_s=10,
        max_connections=n + 10,
    )
    bot = BotApiClient(http, base_url=url, max_reply_bytes=1_048_576)
    user = LLMUserSimulator(llm, default_model="bench")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=n + 10), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def bare(i: int) -> object:
            body = {"conversation_id": str(i), "message": "hello"}
            async with session.post(url + WEBHOOK_PATH, json=body) as response:
                return await response.json()

        try:
            await _measure(
                "bot webhook, orchestrator client",
                lambda i: bot.send_message(str(i), "hello"),
                n,
                rounds,
            )
            await _measure(
                "LLM, orchestrator client",
                lambda i: user.next_message("A learner", LINES, None),
                n,
                rounds,
            )
            await _measure("bot webhook, bare aiohttp", bare, n, rounds)
        finally:
            await http.aclose()
            await llm.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="calls at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake call")
    args = parser.parse_args(argv)
    port = free_port()
    fakes = Process(
        "fakes",
        ["bench.fakes", "--port", str(port), "--latency", str(args.latency)],
        {},
        Path(tempfile.mkdtemp(prefix="convsim-clients-")),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        fakes.wait_http(f"{url}/ready")
        asyncio.run(_run(url, args.n, args.rounds))
    finally:
        fakes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
