"""A generic JSON webhook for bots a team runs itself: the body is a template from the
configuration, the reply is found at a path in the answer.

In the body template, ``{message}`` and ``{conversation_id}`` are replaced inside every string
value (nested ones too), and a value that is exactly ``"{history}"`` becomes the messages so
far, the one being sent last, as ``{"role": "user" | "assistant", "content": ...}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import JsonValue

from contracts.requests import SimulationRequest
from services.orchestrator.bots.transport import post_json
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.ports import TranscriptLine

__all__ = ["HISTORY_PLACEHOLDER", "HttpJsonBot", "render_body", "reply_at"]

HISTORY_PLACEHOLDER = "{history}"


def render_body(
    template: JsonValue, *, message: str, conversation_id: str, history: list[dict[str, str]]
) -> Any:
    """The template with its placeholders filled in (the template is left as it was)."""
    if template == HISTORY_PLACEHOLDER:
        return history
    if isinstance(template, str):
        return template.replace("{conversation_id}", conversation_id).replace("{message}", message)
    if isinstance(template, dict):
        return {
            key: render_body(
                value, message=message, conversation_id=conversation_id, history=history
            )
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [
            render_body(item, message=message, conversation_id=conversation_id, history=history)
            for item in template
        ]
    return template


def reply_at(payload: Any, path: str) -> list[str]:
    """The message(s) at a dotted path (``data.message``, ``choices.0.message.content``): a
    string, or a JSON array of strings (several messages)."""
    found = payload
    for step in path.split("."):
        if isinstance(found, dict) and step in found:
            found = found[step]
        elif isinstance(found, list) and step.isdigit() and int(step) < len(found):
            found = found[int(step)]
        else:
            raise SimulationFailure("bot_bad_response", f"the answer has nothing at {path}")
    messages = [found] if isinstance(found, str) else found
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        raise SimulationFailure(
            "bot_bad_response", f"the answer at {path} is neither text nor a list of texts"
        )
    messages = [m for m in messages if m.strip()]
    if not messages:
        raise SimulationFailure("bot_empty_reply", f"the answer at {path} is empty")
    return messages


class HttpJsonBot:
    """POST the rendered body to the configured URL with the configured headers."""

    opens_remotely = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        body: Mapping[str, JsonValue],
        reply_path: str,
        headers: Mapping[str, str],
        max_reply_bytes: int,
    ) -> None:
        self._http = http
        self._url = url
        self._body = dict(body)
        self._reply_path = reply_path
        self._headers = dict(headers)
        self._max_reply_bytes = max_reply_bytes

    async def open(self, request: SimulationRequest) -> None:
        """Nothing to open: the body carries the conversation id (or the whole history)."""

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        history = [
            {"role": "assistant" if role == "bot" else "user", "content": content}
            for role, content in earlier
        ]
        history.append({"role": "user", "content": message})
        body = render_body(
            self._body,
            message=message,
            conversation_id=request.simulation_id,
            history=history,
        )
        payload = await post_json(
            self._http,
            "bot webhook",
            self._url,
            body,
            max_reply_bytes=self._max_reply_bytes,
            headers=self._headers,
        )
        return reply_at(payload, self._reply_path)
