"""What ``started`` records of a run (``provenance``): models, temperatures, seed, digests of
the persona and the bot prompt, the convsim version. Never a URL, a key or a prompt's text."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import Provenance
from contracts.requests import LLMOptions, SimulationRequest
from services.common.bot_targets import DEFAULT_TARGET, BotTarget, OpenAIChatTarget
from services.orchestrator.bots.openai_chat import chat_settings

__all__ = ["ProvenanceFacts", "convsim_version", "provenance_of", "sha256_hex"]


def convsim_version() -> str:
    """The installed convsim package's version ("unknown" when it is not installed)."""
    try:
        return importlib.metadata.version("convsim")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ProvenanceFacts:
    """What the orchestrator is configured with, beyond the request."""

    version: str
    user_model: str | None
    """The simulated user's default model (CONVSIM_LLM_MODEL); None: the scripted user."""
    targets: Mapping[str, BotTarget]
    llm_model: str
    """An openai_chat target's model when neither the request nor the target sets one."""


def provenance_of(request: SimulationRequest, facts: ProvenanceFacts) -> Provenance:
    """The provenance of the run of ``request`` (the request the turn loop runs: for a replay,
    with the original's persona)."""
    name = request.bot_target or DEFAULT_TARGET
    target = facts.targets.get(name)
    bot_model: str | None = None
    bot_temperature: float | None = None
    if isinstance(target, OpenAIChatTarget):
        bot_model, bot_temperature, _ = chat_settings(
            target, request.bot_llm or LLMOptions(), facts.llm_model
        )
    user_model: str | None = None
    user_temperature: float | None = None
    if facts.user_model is not None:
        options = request.llm or LLMOptions()
        user_model = options.model or facts.user_model
        user_temperature = options.temperature
    return Provenance(
        convsim_version=facts.version,
        bot_target=name,
        bot_kind=None if target is None else target.kind,
        bot_model=bot_model,
        bot_temperature=bot_temperature,
        user_model=user_model,
        user_temperature=user_temperature,
        seed=request.seed,
        persona_sha256=sha256_hex(request.persona),
        bot_prompt_sha256=None if request.bot_prompt is None else sha256_hex(request.bot_prompt),
        replay_of=request.replay_of,
    )
