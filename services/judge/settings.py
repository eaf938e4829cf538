"""Judge settings, from the environment (CONVSIM_*, OPENAI_API_KEY, OPENAI_BASE_URL)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.pricing import ModelPrice
from services.common.settings import SharedSettings

__all__ = ["JudgeSettings"]

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class JudgeSettings(SharedSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSIM_", extra="ignore", populate_by_name=True)

    judge: Literal["llm", "offline"] | None = Field(
        default=None,
        description="CONVSIM_JUDGE: 'llm' asks CONVSIM_JUDGE_MODEL for a verdict per criterion; "
        "'offline' evaluates the assertions and leaves every criterion unjudged. Default: "
        "'llm' when OPENAI_API_KEY is set, else 'offline'.",
    )
    judge_model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-4o-mini"
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    judge_timeout_s: PositiveSeconds = Field(
        default=120.0, description="How long one call of the judge LLM may take."
    )
    connect_timeout_s: PositiveSeconds = 5.0
    judge_llm_attempts: Annotated[int, Field(ge=1, le=5)] = Field(
        default=2,
        description="Calls of the judge LLM per simulation before its criteria are left "
        "unjudged (never passed).",
    )
    judge_concurrency: Annotated[int, Field(ge=1, le=1_000)] = Field(
        default=8, description="Simulations one judge process judges at once (its prefetch)."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="CONVSIM_PRICES, JSON: model -> {input, output} USD per million tokens. "
        "A judge model not in it has its tokens counted and cost_usd null.",
    )
    judge_lookback_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=300.0,
        description="CONVSIM_JUDGE_LOOKBACK_S: the judge follows the event log from this many "
        "seconds before it started; a simulation that began earlier is read back from the log "
        "when it ends.",
    )
    judge_memory_simulations: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=20_000,
        description="CONVSIM_JUDGE_MEMORY_SIMULATIONS: simulations the judge remembers at most "
        "(running ones with their events, judged ones as a tombstone); past it the oldest go "
        "(judged first) and are read back from the log if they still need a verdict.",
    )
    judge_memory_mb: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=64,
        description="CONVSIM_JUDGE_MEMORY_MB: megabytes of events the judge remembers at most; "
        "past it the oldest simulations lose theirs (and are read back from the log).",
    )
    judge_follow_timeout_s: PositiveSeconds = Field(
        default=10.0,
        description="CONVSIM_JUDGE_FOLLOW_TIMEOUT_S: how long a judgement waits for the "
        "judge's follower of the log to be up to date before it reads the log instead.",
    )
    amqp_heartbeat_s: Annotated[int, Field(ge=1, le=600)] = 30
    publish_timeout_s: PositiveSeconds = 10.0
    log_read_timeout_s: PositiveSeconds = 60.0
    log_read_prefetch: Annotated[int, Field(ge=200, le=10_000)] = 1_000
    graceful_timeout_s: PositiveSeconds = 30.0
    metrics_host: str = "127.0.0.1"
    judge_metrics_port: Annotated[int, Field(ge=0, le=65_535)] = Field(
        default=9406,
        description="CONVSIM_JUDGE_METRICS_PORT: Prometheus metrics at "
        "http://<metrics_host>:<port>/metrics; 0 turns it off. Replicas on one host need a "
        "port each.",
    )

    @model_validator(mode="after")
    def _resolve_judge(self) -> JudgeSettings:
        if self.judge is None:
            self.judge = "llm" if self.openai_api_key else "offline"
        if self.judge == "llm" and not self.openai_api_key:
            raise ValueError(
                "CONVSIM_JUDGE=llm needs OPENAI_API_KEY (any value for a local "
                "OpenAI-compatible server)"
            )
        return self

    @property
    def judge_kind(self) -> Literal["llm", "offline"]:
        return self.judge or "offline"
