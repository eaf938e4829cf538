"""A fake of a team's own JSON bot (an ``http_json`` target): records every call, answers
from the history it is sent, with no state of its own.

``POST /chat`` expects the body ``{"session": ..., "messages": [{role, content}...], ...}``
and answers ``{"result": {"messages": [...]}}``: two messages per reply,
``"Reply <k> to: <last message>"`` and ``"Anything else?"``, where k counts the user messages
in the history; the second message of reply ``GOODBYE_AT`` is ``"Goodbye!"`` instead.
A body with ``"gated": true`` holds every reply after the first until the test calls
``open(session)``, so a test can hold a conversation mid-way without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

__all__ = ["GOODBYE_AT", "FakeJsonBot"]

GOODBYE_AT = 2


@dataclass
class FakeJsonBot:
    calls: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)
    """Each call's JSON body and its headers."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gates: dict[str, asyncio.Event] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def open(self, session: str) -> None:
        """Let every reply of the gated conversation go, from now on (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._gate(session).set)

    def _gate(self, session: str) -> asyncio.Event:
        return self._gates.setdefault(session, asyncio.Event())

    def calls_of(self, session: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        with self._lock:
            return [c for c in self.calls if c[0].get("session") == session]

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/chat")
        async def chat(request: Request) -> dict[str, Any]:
            body = await request.json()
            with self._lock:
                self.calls.append((body, dict(request.headers)))
            history = body["messages"]
            k = sum(1 for message in history if message["role"] == "user")
            if body.get("gated") is True and k > 1:
                await self._gate(body["session"]).wait()
            second = "Goodbye!" if k == GOODBYE_AT else "Anything else?"
            return {"result": {"messages": [f"Reply {k} to: {history[-1]['content']}", second]}}

        return api
