"""The ``usage`` block of an OpenAI-compatible chat completion, read leniently: a server that
reports no (or a malformed) usage gives None, never a failed turn."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.events import TurnUsage

__all__ = ["usage_of"]


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt_tokens: int
    completion_tokens: int


def usage_of(completion: Any, model: str) -> TurnUsage | None:
    """The tokens a chat completion reports for ``model``, or None."""
    if not isinstance(completion, dict):
        return None
    try:
        usage = _Usage.model_validate(completion.get("usage"))
    except ValidationError:
        return None
    if usage.prompt_tokens < 0 or usage.completion_tokens < 0:
        return None
    return TurnUsage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, model=model
    )
