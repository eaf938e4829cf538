"""Scenarios and suites: the schema of a suite file (YAML) and of the body of POST /v1/suites.

A scenario says which bot to test, who the simulated user is, and how to judge the result
(``criteria`` for the LLM judge, ``assertions`` checked without one). Limits are those of a
simulation request (``contracts.requests``), so a scenario that validates here becomes a
``SimulationCreate`` that validates too (:func:`simulation_body`). No I/O here: reading files
(and ``include``) is ``services.common.suite_files``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from contracts.assertions import (
    ASSERTION_KINDS,
    MAX_ASSERTIONS,
    MAX_LATENCY_MS,
    Assertion,
    AssertionKind,
)
from contracts.requests import (
    DEFAULT_MAX_TURNS,
    DEFAULT_MIN_TURNS,
    DEFAULT_PERSONA,
    MAX_CRITERIA,
    MAX_HISTORY_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_PERSONA_CHARS,
    MAX_SCRIPT_MESSAGES,
    MAX_TURNS_LIMIT,
    BotId,
    BotTargetName,
    HistoryMessage,
    min_turns_within_max_turns,
)

__all__ = [
    "ASSERTION_KINDS",
    "MAX_ASSERTIONS",
    "MAX_CONCURRENCY",
    "MAX_CRITERIA",
    "MAX_INCLUDES",
    "MAX_LATENCY_MS",
    "MAX_REPEAT",
    "MAX_SUITE_MEMBERS",
    "MAX_SUITE_SCENARIOS",
    "MAX_TAGS",
    "Assertion",
    "AssertionKind",
    "BotSpec",
    "Scenario",
    "SuiteCreate",
    "SuiteFile",
    "UserSpec",
    "simulation_body",
]

MAX_REPEAT = 100
MAX_CONCURRENCY = 100
MAX_TAGS = 20
MAX_INCLUDES = 50
MAX_SUITE_SCENARIOS = 500
MAX_SUITE_MEMBERS = 2_000
"""Scenarios times their repeats: the simulations one suite may start."""


_Text = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
_LongText = Annotated[str, Field(min_length=1, max_length=MAX_PERSONA_CHARS)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]
_Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class BotSpec(BaseModel):
    """The bot under test: a configured target by name, and what that target needs."""

    model_config = ConfigDict(extra="forbid")

    target: Annotated[
        BotTargetName | None,
        Field(
            description="A bot target by name (CONVSIM_BOT_TARGETS, or 'default' and 'llm'); "
            "default: 'default'.",
        ),
    ] = None
    bot_id: Annotated[
        BotId | None, Field(description="Required by robot_ai_lesson targets only.")
    ] = None
    bot_prompt: Annotated[
        _LongText | None, Field(description="The bot's system message (openai_chat targets).")
    ] = None
    input_slots: Annotated[
        dict[str, JsonValue], Field(description="Passed to the bot's initConversation.")
    ] = {}


class UserSpec(BaseModel):
    """The simulated user: who it is, what it wants, and what it says first."""

    model_config = ConfigDict(extra="forbid")

    persona: Annotated[
        _LongText, Field(description="Instructions of the simulated user (its system message).")
    ] = DEFAULT_PERSONA
    goal: Annotated[
        _LongText | None, Field(description="What the simulated user is trying to achieve.")
    ] = None
    opening: Annotated[
        str, Field(max_length=MAX_MESSAGE_CHARS, description="The opening user message.")
    ] = ""
    script: Annotated[
        list[_Text | None],
        Field(
            max_length=MAX_SCRIPT_MESSAGES,
            description="User turns in order after the opening: a string is sent as it is, "
            "null lets the simulated user speak.",
        ),
    ] = []
    history: Annotated[
        list[HistoryMessage],
        Field(max_length=MAX_HISTORY_MESSAGES, description="Earlier messages."),
    ] = []


class Scenario(BaseModel):
    """One conversation to run (``repeat`` times) and how to judge it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[_Name, Field(description="Unique in its suite; names it in reports.")]
    bot: BotSpec = BotSpec()
    user: UserSpec = UserSpec()
    max_turns: Annotated[
        int, Field(ge=1, le=MAX_TURNS_LIMIT, description="How many bot replies to collect.")
    ] = DEFAULT_MAX_TURNS
    min_turns: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_TURNS_LIMIT,
            description="Neither side may end before this many bot replies (at most max_turns).",
        ),
    ] = DEFAULT_MIN_TURNS
    criteria: Annotated[
        list[_Text],
        Field(
            max_length=MAX_CRITERIA,
            description="Plain-language statements the conversation must satisfy (the judge).",
        ),
    ] = []
    assertions: Annotated[list[Assertion], Field(max_length=MAX_ASSERTIONS)] = []
    max_tokens_total: Annotated[
        int | None,
        Field(ge=1, description="Budget of each run: LLM tokens (simulated user and bot)."),
    ] = None
    max_cost_usd: Annotated[
        float | None,
        Field(gt=0, description="Budget of each run: LLM cost in USD (CONVSIM_PRICES)."),
    ] = None
    repeat: Annotated[
        int | None,
        Field(ge=1, le=MAX_REPEAT, description="Runs of this scenario; default: the suite's."),
    ] = None
    tags: Annotated[list[_Tag], Field(max_length=MAX_TAGS)] = []

    _min_turns_within_max_turns = field_validator("min_turns")(min_turns_within_max_turns)

    @model_validator(mode="after")
    def _has_an_opening_message(self) -> Scenario:
        user = self.user
        ends_with_user = bool(user.history) and user.history[-1].is_user
        if not user.opening.strip() and not user.script and not ends_with_user:
            raise ValueError(
                "user.opening is empty, user.history does not end with a user message and there "
                "is no user.script: there is nothing to send to the bot"
            )
        return self


_Scenarios = Annotated[list[Scenario], Field(max_length=MAX_SUITE_SCENARIOS)]


class _SuiteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[_Name | None, Field(description="Default: the file's name.")] = None
    repeat: Annotated[
        int, Field(ge=1, le=MAX_REPEAT, description="Runs of a scenario without its own repeat.")
    ] = 1
    concurrency: Annotated[
        int | None,
        Field(ge=1, le=MAX_CONCURRENCY, description="Members in flight; default: the server's."),
    ] = None
    budget_usd: Annotated[
        float | None,
        Field(
            gt=0,
            description="LLM cost in USD (CONVSIM_PRICES) the suite may spend, simulated users, "
            "bots and judge together. Once spent, nothing more is admitted, waiting members are "
            "cancelled, running ones end with budget_exceeded, and the suite ends with "
            "stop_reason budget_exceeded.",
        ),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _bare_list_is_the_scenarios(cls, value: Any) -> Any:
        return {"scenarios": value} if isinstance(value, list) else value

    def repeat_of(self, scenario: Scenario) -> int:
        return scenario.repeat if scenario.repeat is not None else self.repeat


class SuiteCreate(_SuiteSettings):
    """The body of POST /v1/suites: scenarios, every name once (a bare list is accepted)."""

    scenarios: Annotated[_Scenarios, Field(min_length=1)]

    @field_validator("scenarios")
    @classmethod
    def _names_are_unique(cls, scenarios: list[Scenario]) -> list[Scenario]:
        seen: dict[str, int] = {}
        for index, scenario in enumerate(scenarios):
            if scenario.name in seen:
                raise ValueError(
                    f"scenario name {scenario.name!r} is used twice "
                    f"(scenarios[{seen[scenario.name]}] and scenarios[{index}])"
                )
            seen[scenario.name] = index
        return scenarios

    @model_validator(mode="after")
    def _members_within_limit(self) -> SuiteCreate:
        members = sum(self.repeat_of(scenario) for scenario in self.scenarios)
        if members > MAX_SUITE_MEMBERS:
            raise ValueError(
                f"the suite would start {members} simulations (scenarios times repeat), "
                f"more than {MAX_SUITE_MEMBERS}"
            )
        return self


class SuiteFile(_SuiteSettings):
    """A suite file (YAML): a suite plus ``include``, other suite files relative to this one.

    Included files add their scenarios (before this file's own); their ``repeat`` is the default
    of their own scenarios; their ``name`` and ``concurrency`` are ignored.
    """

    scenarios: _Scenarios = []
    include: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=1_000)]],
        Field(max_length=MAX_INCLUDES, description="Suite files, relative to this file."),
    ] = []

    @model_validator(mode="after")
    def _has_scenarios_or_includes(self) -> SuiteFile:
        if not self.scenarios and not self.include:
            raise ValueError("a suite file has scenarios or include (it has neither)")
        return self


def simulation_body(scenario: Scenario) -> dict[str, JsonValue]:
    """The body of POST /v1/simulations for one run of ``scenario`` (SimulationCreate fields)."""
    body: dict[str, JsonValue] = {
        "bot_target": scenario.bot.target,
        "bot_id": scenario.bot.bot_id,
        "bot_prompt": scenario.bot.bot_prompt,
        "input_slots": scenario.bot.input_slots,
        "persona": scenario.user.persona,
        "goal": scenario.user.goal,
        "user_prompt": scenario.user.opening,
        "script": list(scenario.user.script),
        "history": [message.model_dump() for message in scenario.user.history],
        "max_turns": scenario.max_turns,
        "min_turns": scenario.min_turns,
        "max_tokens_total": scenario.max_tokens_total,
        "max_cost_usd": scenario.max_cost_usd,
        "criteria": list(scenario.criteria),
        "assertions": [
            assertion.model_dump(exclude_none=True) for assertion in scenario.assertions
        ],
    }
    return {key: value for key, value in body.items() if value is not None}
