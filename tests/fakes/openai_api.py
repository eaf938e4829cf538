"""A fake of the OpenAI chat completions API: records every request, answers predictably."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

__all__ = ["FakeOpenAI"]


@dataclass
class FakeOpenAI:
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_with(self, text: str) -> list[dict[str, Any]]:
        """The requests whose messages mention ``text``."""
        with self._lock:
            return [r for r in self.requests if any(text in m["content"] for m in r["messages"])]

    @staticmethod
    def reply_for(messages: list[dict[str, Any]]) -> str:
        """Learner line k answers the bot's k-th line (bot lines are role 'user' here)."""
        k = sum(1 for m in messages if m["role"] == "user")
        return f"Learner line {k} after: {messages[-1]['content']}"

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> dict[str, Any]:
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                self.authorizations.append(request.headers.get("authorization", ""))
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
                            "content": self.reply_for(body["messages"]),
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }

        return api
