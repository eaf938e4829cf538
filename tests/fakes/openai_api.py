"""A fake of the OpenAI chat completions API: records every request, answers predictably.

The requested model picks a fault: ``fail-once-500``, ``rate-limited-once`` (429 with
Retry-After: 1), ``always-500``, ``hang``, ``empty`` (an empty message), ``bad-request`` (400),
``not-a-completion`` (200 with JSON that is no chat completion).
"Once" counts per persona (the system message), so each test has its own.
Every answer reports ``usage`` derived from the text (``usage_for``), recorded in ``usages``.
With ``rate_limit`` (a ``RateLimit``), a call over it is answered 429 with Retry-After.
The model ``BOT_MODEL`` plays a bot (an openai_chat target): ``"Tutor line <k> to: <last>"``.

A request with ``response_format`` json_schema is the judge's (services/judge): it answers the
structured verdicts, one per criterion (the lines ``N. <criterion>`` after ``The criteria:``),
failing a criterion that holds the word ``impossible`` (``judge_verdict``), with usage as
above. The model ``JUDGE_SLOW_MODEL`` answers after ``JUDGE_SLOW_S``.

A marker in the persona makes the learner say the stop phrase (``###STOP###``) at learner line
``N`` (the one answering the bot's N-th line): ``[stop-at N]`` with text left ("Thank you,
bye! ###STOP###"), ``[stop-only-at N]`` only the phrase, the first time that line is asked for
(asked again, it answers as usual), ``[stop-only-from N]`` only the phrase, from that line on.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.rate_limit import RateLimit

__all__ = [
    "BOT_MODEL",
    "FAREWELL",
    "FAULT_MODELS",
    "JUDGE_SLOW_MODEL",
    "STOP_PHRASE",
    "FakeOpenAI",
    "Usage",
    "judge_answer",
    "judge_verdict",
]

BOT_MODEL = "fake-bot"
JUDGE_SLOW_MODEL = "fake-judge-slow"
JUDGE_SLOW_S = 0.5
_CRITERION_LINE = re.compile(r"^\d+\. (.*)$")


def judge_verdict(criterion: str) -> tuple[bool, str]:
    """The fake judge's verdict on a criterion, and its reasoning."""
    if "impossible" in criterion.lower():
        return False, f"Fake judge: the transcript does not show that {criterion!r}."
    return True, f"Fake judge: the transcript shows that {criterion!r}."


STOP_PHRASE = "###STOP###"
FAREWELL = "Thank you, bye!"
_STOP_MARKER = re.compile(r"\[(stop-at|stop-only-at|stop-only-from) (\d+)\]")

FAULT_MODELS = (
    "fail-once-500",
    "rate-limited-once",
    "always-500",
    "hang",
    "empty",
    "bad-request",
    "not-a-completion",
)
"""The models that pick a fault (a gateway must allow them: CONVSIM_ALLOWED_LLM_MODELS)."""


@dataclass(frozen=True)
class Usage:
    """The usage one answer reported: for which model, persona (system message) and tokens."""

    model: str
    system: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    rate_limit: RateLimit | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _calls: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _lines_asked: defaultdict[tuple[str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )

    @staticmethod
    def usage_for(messages: list[dict[str, Any]], content: str) -> tuple[int, int]:
        """Deterministic token counts: one prompt token per 4 characters of the messages
        (plus one per message), one completion token per 4 characters of the answer (at
        least 1)."""
        prompt = sum(len(m["content"]) // 4 + 1 for m in messages)
        return prompt, max(1, len(content) // 4)

    def usages_with(self, text: str) -> list[Usage]:
        """The usages of the answers whose persona (system message) mentions ``text``."""
        with self._lock:
            return [u for u in self.usages if text in u.system]

    def requests_with(self, text: str) -> list[dict[str, Any]]:
        """The requests whose messages mention ``text``."""
        with self._lock:
            return [r for r in self.requests if any(text in m["content"] for m in r["messages"])]

    @staticmethod
    def reply_for(messages: list[dict[str, Any]], model: str = "") -> str:
        """Learner line k answers the bot's k-th line (bot lines are role 'user' here); as
        BOT_MODEL, tutor line k answers the user's k-th line."""
        k = sum(1 for m in messages if m["role"] == "user")
        if model == BOT_MODEL:
            return f"Tutor line {k} to: {messages[-1]['content']}"
        return f"Learner line {k} after: {messages[-1]['content']}"

    def _answer(self, messages: list[dict[str, Any]], model: str) -> str:
        """The reply, or the stop phrase when the persona's marker says so."""
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        k = sum(1 for m in messages if m["role"] == "user")
        with self._lock:
            self._lines_asked[(system, k)] += 1
            asked = self._lines_asked[(system, k)]
        for kind, line in _STOP_MARKER.findall(system):
            n = int(line)
            if kind == "stop-at" and k == n:
                return f"{FAREWELL} {STOP_PHRASE}"
            if (kind == "stop-only-at" and k == n and asked == 1) or (
                kind == "stop-only-from" and k >= n
            ):
                return STOP_PHRASE
        return self.reply_for(messages, model)

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/v1/chat/completions", response_model=None)
        async def chat_completions(request: Request) -> dict[str, Any] | JSONResponse:
            body = await request.json()
            if self.rate_limit is not None and not self.rate_limit.admit():
                return JSONResponse(
                    {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}},
                    status_code=429,
                    headers={"Retry-After": str(self.rate_limit.retry_after_s)},
                )
            with self._lock:
                self.requests.append(body)
                self.authorizations.append(request.headers.get("authorization", ""))
                key = (body["model"], body["messages"][0]["content"])
                self._calls[key] += 1
                n = self._calls[key]
            fault = await _fault(body["model"], n)
            if fault is not None:
                return fault
            messages = body["messages"]
            if _is_judge(body):
                if body["model"] == JUDGE_SLOW_MODEL:
                    await asyncio.sleep(JUDGE_SLOW_S)
                content = judge_answer(messages)
            elif body["model"] == "empty":
                content = ""
            else:
                content = self._answer(messages, body["model"])
            prompt_tokens, completion_tokens = self.usage_for(messages, content)
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            with self._lock:
                self.usages.append(Usage(body["model"], system, prompt_tokens, completion_tokens))
            return {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }

        return api


def _is_judge(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


def judge_answer(messages: list[dict[str, Any]]) -> str:
    """The structured verdicts on the criteria listed in the judge's last message."""
    _, _, listed = messages[-1]["content"].partition("The criteria:\n")
    verdicts = []
    for line in listed.splitlines():
        if (found := _CRITERION_LINE.match(line)) is not None:
            passed, reasoning = judge_verdict(found.group(1))
            verdicts.append({"criterion": found.group(1), "passed": passed, "reasoning": reasoning})
    return json.dumps({"criteria": verdicts})


async def _fault(model: str, n: int) -> JSONResponse | None:
    error = {"error": {"message": "fake failure", "type": "server_error"}}
    match model:
        case "fail-once-500" if n == 1:
            return JSONResponse(error, status_code=500)
        case "rate-limited-once" if n == 1:
            return JSONResponse(error, status_code=429, headers={"Retry-After": "1"})
        case "always-500":
            return JSONResponse(error, status_code=500)
        case "hang":
            await asyncio.Event().wait()
        case "bad-request":
            return JSONResponse(error, status_code=400)
        case "not-a-completion":
            return JSONResponse({"choices": [{"text": "no message here"}]})
    return None
