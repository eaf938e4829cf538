"""What a limited resource is called (a bot target, or the simulated user's LLM calls of one
model), how its limit is looked up, and the part of a broker name that stands for it. Shared by
the permits (max_concurrency) and the rates (rpm, tpm)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["ANY_MODEL", "limit_of", "llm_resource", "queue_key", "target_resource"]

ANY_MODEL = "*"
LLM_PREFIX = "llm:"
MAX_QUEUE_NAME_BYTES = 255


def target_resource(name: str) -> str:
    """A bot target's resource: its name (names hold no ':', so never an ``llm:`` one)."""
    return name


def llm_resource(model: str) -> str:
    """The simulated user's LLM calls of one model."""
    return f"{LLM_PREFIX}{model}"


def limit_of(resource: str, targets: Mapping[str, int], llm: Mapping[str, int]) -> int | None:
    """The limit of a target's resource in ``targets``, of an LLM model's in ``llm`` (the
    model, or ``*`` for any other model); None: no limit."""
    if resource.startswith(LLM_PREFIX):
        model = resource.removeprefix(LLM_PREFIX)
        return llm.get(model, llm.get(ANY_MODEL))
    return targets.get(resource)


def queue_key(resource: str) -> str:
    """The resource in a queue name: itself, or its hash when it is too long to leave room for
    the prefixes and suffixes around it (a long model name)."""
    if len(resource.encode()) <= MAX_QUEUE_NAME_BYTES - 64:
        return resource
    return "sha256-" + hashlib.sha256(resource.encode()).hexdigest()
