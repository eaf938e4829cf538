"""Limits on what a client may send: body size (413) and the request's fields (422, naming
the field and the setting), as configured; the contract's own bounds stay the ceiling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.requests import SimulationCreate
from services.gateway.dependencies import SettingsDep
from services.gateway.raw_responses import send_problem

__all__ = ["BodySizeLimit", "CheckedCreate"]


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length when it is sent
    and by counting otherwise (chunked), before anything is parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if (
                name.lower() == b"content-length"
                and value.isdigit()
                and int(value) > self._max_bytes
            ):
                await _too_large(send, self._max_bytes)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise HTTPException(413, detail=_too_large_detail(self._max_bytes))
            return message

        await self._app(scope, counted, send)


def _too_large_detail(max_bytes: int) -> str:
    return f"the request body is over {max_bytes} bytes (CONVSIM_MAX_BODY_BYTES)"


async def _too_large(send: Send, max_bytes: int) -> None:
    await send_problem(send, 413, _too_large_detail(max_bytes))


def _error(loc: tuple[str | int, ...], message: str, kind: str = "too_long") -> dict[str, Any]:
    return {"type": kind, "loc": ("body", *loc), "msg": message, "input": None}


async def checked_create(body: SimulationCreate, settings: SettingsDep) -> SimulationCreate:
    """The request body, within this deployment's limits (CONVSIM_MAX_*)."""
    errors: list[dict[str, Any]] = []
    chars = settings.max_message_chars
    if len(body.user_prompt) > chars:
        errors.append(
            _error(("user_prompt",), f"at most {chars} characters (CONVSIM_MAX_MESSAGE_CHARS)")
        )
    if len(body.history) > settings.max_history_messages:
        limit = settings.max_history_messages
        errors.append(
            _error(("history",), f"at most {limit} messages (CONVSIM_MAX_HISTORY_MESSAGES)")
        )
    for index, message in enumerate(body.history):
        if len(message.content) > chars:
            errors.append(
                _error(
                    ("history", index, "content"),
                    f"at most {chars} characters (CONVSIM_MAX_MESSAGE_CHARS)",
                )
            )
    # The default persona is ours, not the client's: only a persona sent is held to the limit.
    if "persona" in body.model_fields_set and len(body.persona) > settings.max_persona_chars:
        limit = settings.max_persona_chars
        errors.append(
            _error(("persona",), f"at most {limit} characters (CONVSIM_MAX_PERSONA_CHARS)")
        )
    if body.max_turns > settings.max_turns:
        errors.append(
            _error(("max_turns",), f"at most {settings.max_turns} (CONVSIM_MAX_TURNS)", "less_than")
        )
    if body.bot_target is not None and body.bot_target not in settings.bot_targets:
        known = ", ".join(sorted(settings.bot_targets)) or "none"
        errors.append(
            _error(
                ("bot_target",),
                f"no bot target named {body.bot_target!r} (configured: {known})",
                "unknown_bot_target",
            )
        )
    if errors:
        raise RequestValidationError(errors)
    return body


CheckedCreate = Annotated[SimulationCreate, Depends(checked_create)]
