"""The part of an OpenAI-compatible chat completion our LLM calls read, validated leniently by
pydantic-core. The SDK's own ChatCompletion is built field by field in Python (openai's
construct_type), about 0.45 ms per call: a quarter of each LLM call's CPU in a busy
orchestrator."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ChatCompletionIn"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = None


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _Message


class ChatCompletionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    choices: list[_Choice]

    @property
    def content(self) -> str | None:
        """The first choice's message, if any."""
        return self.choices[0].message.content if self.choices else None
