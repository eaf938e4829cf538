"""Fakes of the bot API and of the OpenAI API with a fixed latency per call, as one bare ASGI
app (no framework: the fakes must cost next to nothing) served by uvicorn on loopback.

``python -m bench.fakes --port 9500 --latency 1.0``: the bot API at ``http://127.0.0.1:9500``
and an OpenAI-compatible API at ``http://127.0.0.1:9500/v1``. With ``--llm-rpm``, the LLM is
rate limited (429 with Retry-After above it; bench/rate_limit.py) and ``/stats`` tells what it
admitted and refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from bench.rate_limit import ProviderLimit

__all__ = ["BOT_MODEL", "JUDGE_MODEL", "FakeApis", "bot_reply", "learner_reply"]

BOT_MODEL = "bench-bot"
"""The model of the bench's ``openai_chat`` bot target: the fake answers it as the bot API
would (``bot_reply`` of the last message), so every mode has the same transcript."""
JUDGE_MODEL = "bench-judge"
"""The judge's model: answered with every criterion passed (structured output)."""


def bot_reply(message: str) -> str:
    return f"Bot heard: {message[:60]}"


def learner_reply(turn: int) -> str:
    return f"Learner line {turn}"


class FakeApis:
    def __init__(self, latency_s: float, llm_limit: ProviderLimit | None = None) -> None:
        self._latency_s = latency_s
        self._llm_limit = llm_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/ready":  # the driver's readiness probe: no latency
            await _json(send, {"ready": True})
            return
        if scope["path"] == "/stats":
            await _json(send, self._llm_limit.stats() if self._llm_limit else {})
            return
        limit = self._llm_limit
        if limit is not None and scope["path"].startswith("/v1/") and not limit.admit():
            await _json(send, {"error": {"message": "rate limited"}}, status=429)
            return
        request = json.loads(body or b"{}")
        await asyncio.sleep(self._latency_s)
        await _json(send, self._answer(scope["path"], request))

    @staticmethod
    def _answer(path: str, request: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/initConversation"):
            return {"status": 0, "msg": "Success", "data": {}}
        if path.endswith("/webhook"):
            return {
                "status": 0,
                "msg": "Success",
                "data": {"message": bot_reply(request["message"])},
            }
        messages = request.get("messages", [])
        model = request.get("model", "bench")
        if model == BOT_MODEL:
            content = bot_reply(messages[-1]["content"])
        elif model == JUDGE_MODEL:
            content = json.dumps({"criteria": _passed(messages[-1]["content"])})
        else:
            content = learner_reply(sum(1 for m in messages if m["role"] == "user"))  # bot lines
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def _passed(prompt: str) -> list[dict[str, Any]]:
    """Every numbered criterion of the judge's prompt (the ``1. ...`` lines after its last
    "criteria:"), passed."""
    listed = prompt.rsplit("criteria:", 1)[-1]
    criteria = [m.group(1).strip() for m in re.finditer(r"^\s*\d+\.\s+(.+)$", listed, re.M)]
    return [{"criterion": c, "passed": True, "reasoning": "bench"} for c in criteria]


async def _json(send: Send, payload: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, required=True, help="seconds per call")
    parser.add_argument("--llm-rpm", type=float, help="the LLM's rate limit (calls a minute)")
    parser.add_argument("--llm-burst", type=float, help="calls at once (default: 2 s of rpm)")
    args = parser.parse_args()
    limit = None
    if args.llm_rpm:
        limit = ProviderLimit(args.llm_rpm, args.llm_burst or max(1.0, args.llm_rpm / 30))
    uvicorn.run(
        FakeApis(args.latency, limit),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
