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
