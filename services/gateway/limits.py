"""Limits on what a client may send: body size (413), the request's fields (422, naming
the field and the setting), as configured, the contract's own bounds staying the ceiling; and
how many simulations one key may have active at once (429)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.ids import created_at_of
from contracts.requests import LLMOptions, SimulationCreate
from services.common.bot_targets import DEFAULT_TARGET
from services.gateway.active import ActiveSimulations, TooManyActive
from services.gateway.dependencies import SettingsDep
from services.gateway.raw_responses import send_problem
from services.gateway.settings import GatewaySettings

__all__ = ["Admission", "BodySizeLimit", "CheckedCreate", "active_place", "place_of"]

ACTIVE_RETRY_AFTER_S = 10
"""A simulation takes seconds to minutes: a place is unlikely to free up much sooner."""


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
    """The request body of a simulation, within this deployment's limits (CONVSIM_MAX_*)."""
    if body.mode != "simulation":  # only POST /v1/conversations opens a conversation
        raise RequestValidationError(
            [_error(("mode",), "a conversation is opened with POST /v1/conversations", "extra")]
        )
    return within_limits(body, settings)


def within_limits(body: SimulationCreate, settings: GatewaySettings) -> SimulationCreate:
    """The request (a simulation's or a conversation's) within CONVSIM_MAX_*."""
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
    if len(body.script) > settings.max_turns:
        errors.append(
            _error(("script",), f"at most {settings.max_turns} messages (CONVSIM_MAX_TURNS)")
        )
    for index, item in enumerate(body.script):
        if item is not None and len(item) > chars:
            errors.append(
                _error(("script", index), f"at most {chars} characters (CONVSIM_MAX_MESSAGE_CHARS)")
            )
    if body.goal is not None and len(body.goal) > settings.max_persona_chars:
        limit = settings.max_persona_chars
        errors.append(_error(("goal",), f"at most {limit} characters (CONVSIM_MAX_PERSONA_CHARS)"))
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
    if body.llm is not None:
        errors.extend(
            _llm_errors(body.llm, settings.permitted_llm_models(), settings.max_llm_tokens)
        )
    errors.extend(_bot_errors(body, settings))
    errors.extend(_unpriced_budget_errors(body, settings))
    if errors:
        raise RequestValidationError(errors)
    return body


def _bot_errors(body: SimulationCreate, settings: GatewaySettings) -> list[dict[str, Any]]:
    """The bot target exists, and the request has what its kind needs: ``bot_id`` for a
    robot_ai_lesson bot, ``bot_prompt`` for an openai_chat one; ``bot_llm`` within the limits
    of the simulated user's LLM."""
    targets = settings.targets()
    name = body.bot_target or DEFAULT_TARGET
    target = targets.get(name)
    if target is None:
        return [
            _error(
                ("bot_target",),
                f"no bot target named {name!r} (configured: {', '.join(sorted(targets))})",
                "unknown_bot_target",
            )
        ]
    errors: list[dict[str, Any]] = []
    if target.kind == "robot_ai_lesson" and body.bot_id is None:
        errors.append(
            _error(("bot_id",), f"bot target {name!r} (robot_ai_lesson) needs bot_id", "missing")
        )
    if target.kind == "openai_chat":
        prompt = body.bot_prompt or ""
        if not prompt.strip():
            errors.append(
                _error(
                    ("bot_prompt",),
                    f"bot target {name!r} (openai_chat) needs bot_prompt, the bot's system message",
                    "missing",
                )
            )
        elif len(prompt) > settings.max_persona_chars:
            limit = settings.max_persona_chars
            errors.append(
                _error(("bot_prompt",), f"at most {limit} characters (CONVSIM_MAX_PERSONA_CHARS)")
            )
    if body.bot_llm is not None:
        errors.extend(
            _llm_errors(
                body.bot_llm, settings.permitted_llm_models(), settings.max_llm_tokens, "bot_llm"
            )
        )
    return errors


def _unpriced_budget_errors(
    body: SimulationCreate, settings: GatewaySettings
) -> list[dict[str, Any]]:
    """A ``max_cost_usd`` can only count priced calls: a model the request names that
    CONVSIM_PRICES (when the gateway has it) does not price is refused."""
    if body.max_cost_usd is None or not settings.prices:
        return []
    errors: list[dict[str, Any]] = []
    for field, options in (("llm", body.llm), ("bot_llm", body.bot_llm)):
        model = options.model if options is not None else None
        if model is not None and model not in settings.prices:
            errors.append(
                _error(
                    (field, "model"),
                    f"model {model!r} has no price (CONVSIM_PRICES): max_cost_usd cannot count it",
                    "model_not_priced",
                )
            )
    return errors


def _llm_errors(
    llm: LLMOptions, permitted: list[str], max_tokens: int, field: str = "llm"
) -> list[dict[str, Any]]:
    """The LLM options within CONVSIM_ALLOWED_LLM_MODELS and CONVSIM_MAX_LLM_TOKENS."""
    errors: list[dict[str, Any]] = []
    if llm.model is not None and llm.model not in permitted:
        errors.append(
            _error(
                (field, "model"),
                f"model {llm.model!r} is not allowed (CONVSIM_ALLOWED_LLM_MODELS: "
                f"{', '.join(permitted)})",
                "model_not_allowed",
            )
        )
    if llm.max_tokens is not None and llm.max_tokens > max_tokens:
        errors.append(
            _error(
                (field, "max_tokens"), f"at most {max_tokens} (CONVSIM_MAX_LLM_TOKENS)", "less_than"
            )
        )
    return errors


CheckedCreate = Annotated[SimulationCreate, Depends(checked_create)]


class Admission:
    """One place among the caller's active simulations, held while a request is accepted."""

    def __init__(self) -> None:
        self.simulation_id: str | None = None

    def accepted(self, simulation_id: str) -> None:
        """The simulation this place went to (it counts from now on)."""
        self.simulation_id = simulation_id


@asynccontextmanager
async def active_place(
    request: Request, owner: str | None, settings: GatewaySettings
) -> AsyncIterator[Admission]:
    """429 with Retry-After when the caller has CONVSIM_MAX_ACTIVE_PER_KEY simulations queued
    or running (all callers together while API keys are off). Held around the accept only:
    the simulation named by ``Admission.accepted`` counts from then on; a place given no
    simulation (an error, an idempotent replay) is given back.

    A context manager entered where a simulation is queued (submission.py, given by
    ``place_of``), not a FastAPI yield dependency: FastAPI's exit stack
    and cancel scope for one cost more than the rest of it (docs/benchmarks.md, "The per-key
    admission as a context manager")."""
    active: ActiveSimulations = request.app.state.active
    index = active.index
    try:
        index.reserve(owner, settings.max_active_per_key, datetime.now(UTC))
    except TooManyActive as exc:
        raise HTTPException(
            429,
            detail=f"this key has {exc.limit} simulations queued or running already "
            "(CONVSIM_MAX_ACTIVE_PER_KEY); retry once one has ended",
            headers={"Retry-After": str(ACTIVE_RETRY_AFTER_S)},
        ) from exc
    admission = Admission()
    try:
        yield admission
    finally:
        if admission.simulation_id is not None:
            at = created_at_of(admission.simulation_id) or datetime.now(UTC)
            index.queued(admission.simulation_id, owner, at)
        index.release(owner)


def place_of(
    request: Request, owner: str | None, settings: GatewaySettings
) -> Callable[[], AbstractAsyncContextManager[Admission]]:
    """The caller's ``active_place``, to take when a new simulation is queued (submission.py's
    ``place``): a replay of an Idempotency-Key takes none."""
    return partial(active_place, request, owner, settings)
