"""Assertions: checks of a simulation's bot replies that need no LLM (contains, matches,
latency), as scenarios and simulation requests carry them, and their evaluation."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

__all__ = [
    "ASSERTION_KINDS",
    "MAX_ASSERTIONS",
    "MAX_LATENCY_MS",
    "Assertion",
    "AssertionKind",
]

MAX_ASSERTIONS = 50
MAX_LATENCY_MS = 600_000
_MAX_TEXT = 4_000
_MAX_TURN = 50

_Text = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]

AssertionKind = Literal["contains", "not_contains", "matches", "not_matches", "max_latency_ms"]
ASSERTION_KINDS: tuple[AssertionKind, ...] = (
    "contains",
    "not_contains",
    "matches",
    "not_matches",
    "max_latency_ms",
)
_KINDS: list[JsonValue] = list(ASSERTION_KINDS)


class Assertion(BaseModel):
    """A check of bot replies without an LLM: exactly one check, on one reply or on all."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": [kind]} for kind in _KINDS]},
    )

    contains: Annotated[_Text | None, Field(description="The reply contains this text.")] = None
    not_contains: Annotated[
        _Text | None, Field(description="The reply does not contain this text.")
    ] = None
    matches: Annotated[
        _Text | None, Field(description="A regular expression (Python) the reply matches.")
    ] = None
    not_matches: Annotated[
        _Text | None, Field(description="A regular expression (Python) the reply does not match.")
    ] = None
    max_latency_ms: Annotated[
        int | None, Field(ge=1, le=MAX_LATENCY_MS, description="The reply took at most this.")
    ] = None
    turn: Annotated[
        int | None,
        Field(
            ge=1,
            le=_MAX_TURN,
            description="The bot reply's 1-based number; without it, every bot reply.",
        ),
    ] = None

    @field_validator("matches", "not_matches")
    @classmethod
    def _is_a_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _has_exactly_one_check(self) -> Assertion:
        given = [kind for kind in ASSERTION_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"an assertion has exactly one of {', '.join(ASSERTION_KINDS)} (found: {found})"
            )
        return self

    @property
    def kind(self) -> AssertionKind:
        return next(kind for kind in ASSERTION_KINDS if getattr(self, kind) is not None)

    @property
    def value(self) -> str | int:
        value: str | int = getattr(self, self.kind)
        return value

    def describe(self) -> str:
        """One line for reports: ``turn 2: contains 'cat'``."""
        check = f"{self.kind} {self.value!r}"
        return check if self.turn is None else f"turn {self.turn}: {check}"
