"""The simulated user: an LLM playing the learner, or an offline scripted one."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Sequence
from typing import Protocol

import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError

from contracts.events import TurnRole
from contracts.requests import LLMOptions
from services.common.chat_completion import ChatCompletionIn
from services.common.connect_errors import unreachable_reason
from services.orchestrator.endings import DEFAULT_STOP_PHRASE
from services.orchestrator.errors import SimulationFailure, retry_after_seconds
from services.orchestrator.llm_usage import usage_of
from services.orchestrator.ports import Metered

__all__ = [
    "LLMUserSimulator",
    "ScriptedUserSimulator",
    "TranscriptLine",
    "UserSimulator",
    "llm_messages",
]

TranscriptLine = tuple[TurnRole, str]


class UserSimulator(Protocol):
    """Writes the simulated user's next message, given the conversation so far."""

    kind: str

    async def next_message(
        self,
        persona: str,
        lines: Sequence[TranscriptLine],
        options: LLMOptions | None,
        *,
        seed: int | None = None,
    ) -> str | Metered[str]:
        """The next message; an LLM adds the tokens of its call (Metered). ``seed``: the
        request's, sent with an LLM call; the scripted user's choices depend on it."""
        ...


def llm_messages(persona: str, lines: Sequence[TranscriptLine]) -> list[ChatCompletionMessageParam]:
    """The chat for an LLM *playing the user*: the persona is the system message, the bot's
    lines are role ``user`` and the simulated user's own lines are role ``assistant``."""
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": persona}]
    for role, content in lines:
        if role == "bot":
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": content})
    return messages


class LLMUserSimulator:
    kind = "llm"

    def __init__(self, client: openai.AsyncOpenAI, *, default_model: str) -> None:
        self._client = client
        self._default_model = default_model

    async def next_message(
        self,
        persona: str,
        lines: Sequence[TranscriptLine],
        options: LLMOptions | None,
        *,
        seed: int | None = None,
    ) -> Metered[str]:
        options = options or LLMOptions()
        model = options.model or self._default_model
        body: dict[str, object] = {
            "model": model,
            "messages": llm_messages(persona, lines),
        }
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.max_tokens is not None:
            body["max_tokens"] = options.max_tokens
        if seed is not None:
            body["seed"] = seed
        try:
            # The SDK's low-level post: same client, timeouts and errors as
            # chat.completions.create, without its per-call params transform, which was a
            # third of a busy orchestrator's CPU (the body is built from typed data already);
            # cast_to=object answers the decoded JSON, validated below.
            answer = await self._client.post("/chat/completions", cast_to=object, body=body)
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise _connection_failure(exc) from exc
        except openai.RateLimitError as exc:
            raise SimulationFailure(
                "llm_rate_limited",
                "the LLM answered 429",
                retryable=True,
                retry_after_s=retry_after_seconds(exc.response.headers.get("retry-after")),
                throttled=True,
            ) from exc
        except openai.APIStatusError as exc:
            raise SimulationFailure(
                "llm_error",
                f"the LLM answered HTTP {exc.status_code}",
                retryable=exc.status_code >= 500,
                retry_after_s=retry_after_seconds(exc.response.headers.get("retry-after")),
            ) from exc
        except openai.APIError as exc:
            raise SimulationFailure(
                "llm_error", f"the LLM answered badly ({type(exc).__name__})"
            ) from exc
        try:
            completion = ChatCompletionIn.model_validate(answer)
        except ValidationError as exc:
            raise SimulationFailure(
                "llm_error", "the LLM answered something other than a chat completion"
            ) from exc
        content = completion.content
        if not content or not content.strip():
            raise SimulationFailure("llm_error", "the LLM answered an empty message")
        return Metered(content.strip(), usage_of(answer, model))


def _connection_failure(exc: openai.APIConnectionError) -> SimulationFailure:
    """``llm_unreachable`` when nothing answers (the SDK's aiohttp transport reports a refused
    connection or an unknown host as a timeout), ``llm_timeout`` when the LLM was too slow."""
    reason = unreachable_reason(exc)
    if reason is None and isinstance(exc, openai.APITimeoutError):
        return SimulationFailure("llm_timeout", "the LLM did not answer in time", retryable=True)
    return SimulationFailure(
        "llm_unreachable",
        f"could not reach the LLM ({reason or 'connection error'})",
        retryable=True,
    )


_QUOTED = re.compile(r"[\"“']([^\"”']{1,40})[\"”']")
_REPEAT_CUES = ("can you say", "repeat", "say it")
_CANNED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("meow",), "It is a cat!"),
    (("legs",), "Two legs?"),
    (("sky",), "Blue! Màu xanh."),
    (("banana",), "Yellow."),
    (("your name",), "My name is Minh."),
    (("how old",), "I am ten years old."),
    (("how are you",), "I'm fine, thank you. And you?"),
    (("colour", "color"), "I like blue. Màu xanh!"),
    (("animal",), "I like cat. Con mèo is cute."),
    (("food", "eat"), "I like eat phở and apple."),
    (("count",), "One, two, three, four, five!"),
    (("ready",), "Yes, I ready!"),
    (("bye", "goodbye"), "Bye bye teacher!"),
)
_ANSWERS = (
    "Yes, I know!",
    "I don't know... can you help me?",
    "Is it a dog?",
    "Ok teacher.",
    "I like it very much.",
    "Can you say again, please?",
)
_ACKNOWLEDGEMENTS = ("Ok!", "Wow, cool.", "Yes teacher.", "I understand.", "Hmm, ok.")


_GOODBYES = ("bye", "goodbye", "see you")
_FAREWELL = "Bye bye teacher!"


class ScriptedUserSimulator:
    """An offline, deterministic learner: the same conversation gives the same replies.

    It ends the conversation the way the LLM is told to: when the bot says goodbye (the demo
    bot's lesson is over), it answers "Bye bye teacher!" followed by the stop phrase, which is
    sent without the phrase, answered, and ends the simulation with ``user_ended``."""

    kind = "scripted"

    def __init__(self, *, delay_s: float = 0.0, stop_phrase: str = DEFAULT_STOP_PHRASE) -> None:
        self._delay_s = delay_s
        self._stop_phrase = stop_phrase

    async def next_message(
        self,
        persona: str,
        lines: Sequence[TranscriptLine],
        options: LLMOptions | None,
        *,
        seed: int | None = None,
    ) -> str:
        if self._delay_s:
            await asyncio.sleep(self._delay_s)  # a human-like pause for the offline demo
        bot_said = next((content for role, content in reversed(lines) if role == "bot"), "")
        if any(word in bot_said.lower() for word in _GOODBYES):
            return f"{_FAREWELL} {self._stop_phrase}"
        return self.reply_to(bot_said, turn=len(lines), seed=seed)

    @staticmethod
    def reply_to(bot_said: str, *, turn: int, seed: int | None = None) -> str:
        """The learner's answer to one bot message: a function of the message, the turn and
        the seed (without a seed, of the message and the turn, as ever)."""
        lowered = bot_said.lower()
        cue_at = max(lowered.rfind(cue) for cue in _REPEAT_CUES)
        if cue_at >= 0 and (quoted := _QUOTED.search(bot_said, cue_at)):
            return f"{quoted.group(1).capitalize()}!"
        for keywords, answer in _CANNED:
            if any(keyword in lowered for keyword in keywords):
                return answer
        key = f"{turn}:{bot_said}" if seed is None else f"{seed}:{turn}:{bot_said}"
        pick = zlib.crc32(key.encode())
        choices = _ANSWERS if "?" in bot_said else _ACKNOWLEDGEMENTS
        return choices[pick % len(choices)]
