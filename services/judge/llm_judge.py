"""The judge LLM: one call per simulation (OpenAI-compatible chat completions) with the whole
transcript, the goal and the persona, answering in structured output (``response_format``
json_schema) a verdict and its reasoning per criterion.

A call that fails, or an answer that does not say something about a criterion, leaves that
criterion unjudged (``passed`` null): never a made-up pass."""

from __future__ import annotations

import logging
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.events import TurnUsage
from contracts.judgement import CriterionResult
from services.common.chat_completion import ChatCompletionIn
from services.common.connect_errors import unreachable_reason
from services.judge.case import Case, CriteriaVerdicts

__all__ = ["RESPONSE_FORMAT", "LLMJudge", "judge_messages", "parse_verdicts"]

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You judge a conversation between a simulated user and a chatbot under test. For each "
    "criterion you are given, decide strictly from the transcript whether the conversation "
    "satisfies it, and explain why in one or two sentences quoting the transcript. A criterion "
    "the transcript gives no evidence for is not satisfied. Answer one entry per criterion, in "
    "the order given, repeating each criterion word for word."
)

RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "criteria_verdicts",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "criteria": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "criterion": {"type": "string"},
                            "passed": {"type": "boolean"},
                            "reasoning": {"type": "string"},
                        },
                        "required": ["criterion", "passed", "reasoning"],
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["criteria"],
            "additionalProperties": False,
        },
    },
}

NO_ANSWER = "unjudged: the judge LLM gave no verdict on it"


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    criterion: str
    passed: bool
    reasoning: str


class _Verdicts(BaseModel):
    model_config = ConfigDict(extra="ignore")
    criteria: list[_Verdict]


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt_tokens: int
    completion_tokens: int


class _Completion(ChatCompletionIn):
    usage: _Usage | None = None


def judge_messages(case: Case) -> list[dict[str, str]]:
    """The chat asking for the verdicts: the persona, the goal, the transcript, the criteria."""
    criteria = "\n".join(f"{n}. {criterion}" for n, criterion in enumerate(case.criteria, 1))
    goal = case.goal or "(none given)"
    user = (
        f"The simulated user's persona:\n{case.persona}\n\n"
        f"The simulated user's goal:\n{goal}\n\n"
        f"The transcript (one line per message):\n{case.transcript}\n"
        f"The criteria:\n{criteria}"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdicts(content: str, criteria: list[str]) -> list[CriterionResult]:
    """The judge's answer, one result per criterion asked: matched by its text, else by its
    position; a criterion the answer has nothing on is unjudged. Raises ValueError when the
    answer is not the structured output asked for."""
    try:
        verdicts = _Verdicts.model_validate_json(content).criteria
    except ValidationError as exc:
        raise ValueError(f"the judge LLM's answer is not the verdicts asked for: {exc}") from exc
    by_text = {v.criterion.strip(): v for v in verdicts}
    results: list[CriterionResult] = []
    for position, criterion in enumerate(criteria):
        verdict = by_text.get(criterion.strip())
        if verdict is None and len(verdicts) == len(criteria):
            verdict = verdicts[position]
        if verdict is None:
            results.append(CriterionResult(criterion=criterion, passed=None, reasoning=NO_ANSWER))
        else:
            results.append(
                CriterionResult(
                    criterion=criterion, passed=verdict.passed, reasoning=verdict.reasoning
                )
            )
    return results


class LLMJudge:
    kind = "llm"

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, attempts: int) -> None:
        self._client = client
        self.model: str | None = model
        self._attempts = attempts

    async def judge(self, case: Case) -> CriteriaVerdicts:
        if not case.criteria:
            return CriteriaVerdicts(results=[])
        body: dict[str, object] = {
            "model": self.model,
            "messages": judge_messages(case),
            "temperature": 0,
            "response_format": RESPONSE_FORMAT,
        }
        if case.seed is not None:
            body["seed"] = case.seed
        usages: list[TurnUsage] = []
        errors: list[str] = []
        for attempt in range(1, self._attempts + 1):
            try:
                answer = await self._client.post("/chat/completions", cast_to=object, body=body)
                completion = _Completion.model_validate(answer)
            except (openai.APIError, ValidationError) as exc:
                errors.append(kind := _error_kind(exc))
                logger.warning(
                    "judge LLM call %d/%d for %s failed: %s",
                    attempt,
                    self._attempts,
                    case.simulation_id,
                    kind,
                )
                continue
            if completion.usage is not None:
                usages.append(
                    TurnUsage(
                        prompt_tokens=max(0, completion.usage.prompt_tokens),
                        completion_tokens=max(0, completion.usage.completion_tokens),
                        model=self.model,
                    )
                )
            content = completion.content
            try:
                results = parse_verdicts(content or "", case.criteria)
            except ValueError:
                errors.append("bad_answer")
                logger.warning(
                    "judge LLM call %d/%d for %s: the answer is not the verdicts asked for",
                    attempt,
                    self._attempts,
                    case.simulation_id,
                )
                continue
            return CriteriaVerdicts(results=results, usages=usages, errors=errors)
        reason = f"unjudged: the judge LLM failed ({', '.join(errors)})"
        return CriteriaVerdicts(
            results=[
                CriterionResult(criterion=criterion, passed=None, reasoning=reason)
                for criterion in case.criteria
            ],
            usages=usages,
            errors=errors,
        )


def _error_kind(exc: Exception) -> str:
    match exc:
        case openai.APITimeoutError() if unreachable_reason(exc) is None:
            return "timeout"
        case openai.APIConnectionError():  # the aiohttp transport's "timeouts" included
            return "unreachable"
        case openai.RateLimitError():
            return "rate_limited"
        case openai.APIStatusError():
            return f"http_{exc.status_code}"
        case ValidationError():
            return "bad_answer"
        case _:
            return "error"
