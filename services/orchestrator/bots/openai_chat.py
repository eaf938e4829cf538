"""A bot that is a system prompt plus a model on any OpenAI-compatible endpoint: the "two
prompts talking" case. Its own lines are ``assistant`` and the simulated user's ``user``:
the mirror of the simulated user's mapping (user_simulator.llm_messages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from contracts.requests import LLMOptions, SimulationRequest
from services.common.bot_targets import OpenAIChatTarget
from services.orchestrator.bots.transport import post_json
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.llm_usage import usage_of
from services.orchestrator.ports import Metered, TranscriptLine

__all__ = ["OpenAIChatBot", "bot_messages", "chat_settings"]


def chat_settings(
    target: OpenAIChatTarget, options: LLMOptions, default_model: str
) -> tuple[str, float | None, int | None]:
    """The model, temperature and max_tokens of a call: the request's ``bot_llm`` first, then
    the target's, then (the model only) the simulated user's default model."""
    model = options.model or target.model or default_model
    temperature = options.temperature
    if temperature is None:
        temperature = target.temperature
    return model, temperature, options.max_tokens or target.max_tokens


def bot_messages(
    bot_prompt: str, earlier: Sequence[TranscriptLine], message: str
) -> list[dict[str, str]]:
    """The chat for an LLM *playing the bot*: its prompt is the system message, its own lines
    are ``assistant``, the simulated user's lines (and ``message``, last) are ``user``."""
    messages = [{"role": "system", "content": bot_prompt}]
    for role, content in earlier:
        messages.append({"role": "assistant" if role == "bot" else "user", "content": content})
    messages.append({"role": "user", "content": message})
    return messages


class OpenAIChatBot:
    """POST {base_url}/chat/completions with the request's ``bot_prompt`` and ``bot_llm``."""

    opens_remotely = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        target: OpenAIChatTarget,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        max_reply_bytes: int,
    ) -> None:
        self._http = http
        self._target = target
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._max_reply_bytes = max_reply_bytes

    async def open(self, request: SimulationRequest) -> None:
        if not request.bot_prompt:
            raise SimulationFailure(
                "bot_rejected", "an openai_chat target needs the request's bot_prompt"
            )

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str] | Metered[list[str]]:
        body = self._body(request.bot_llm or LLMOptions())
        if request.seed is not None:
            body["seed"] = request.seed
        body["messages"] = bot_messages(request.bot_prompt or "", earlier, message)
        payload = await post_json(
            self._http,
            "chat completion",
            self._url,
            body,
            max_reply_bytes=self._max_reply_bytes,
            headers=self._headers,
        )
        messages = [_content_of(payload)]
        usage = usage_of(payload, body["model"])
        return messages if usage is None else Metered(messages, usage)

    def _body(self, options: LLMOptions) -> dict[str, Any]:
        model, temperature, max_tokens = chat_settings(self._target, options, self._model)
        body: dict[str, Any] = {"model": model}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return body


def _content_of(payload: Any) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise SimulationFailure(
            "bot_bad_response", "chat completion answered without choices.0.message"
        ) from exc
    if content is None or (isinstance(content, str) and not content.strip()):
        raise SimulationFailure("bot_empty_reply", "chat completion answered an empty message")
    if not isinstance(content, str):
        raise SimulationFailure("bot_bad_response", "chat completion content is not text")
    return content.strip()
