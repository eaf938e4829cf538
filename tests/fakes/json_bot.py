"""A fake of a team's own JSON bot (an ``http_json`` target): records every call, answers
from the history it is sent, with no state of its own.

``POST /chat`` expects the body ``{"session": ..., "messages": [{role, content}...], ...}``
and answers ``{"result": {"messages": [...]}}``: two messages per reply,
``"Reply <k> to: <last message>"`` and ``"Anything else?"``, where k counts the user messages
in the history; the second message of reply ``GOODBYE_AT`` is ``"Goodbye!"`` instead.
"""

from __future__ import annotations

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
            second = "Goodbye!" if k == GOODBYE_AT else "Anything else?"
            return {"result": {"messages": [f"Reply {k} to: {history[-1]['content']}", second]}}

        return api
