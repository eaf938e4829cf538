"""Gateway settings, from the environment (CONVSIM_*)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from contracts.requests import (
    MAX_HISTORY_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_PERSONA_CHARS,
    MAX_TURNS_LIMIT,
)
from contracts.scenarios import MAX_CONCURRENCY
from services.common.pricing import ModelPrice
from services.common.settings import SharedSettings

__all__ = ["GatewaySettings"]

PositiveSeconds = Annotated[float, Field(gt=0, le=3_600)]


class GatewaySettings(SharedSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSIM_", extra="ignore")

    gateway_host: str = "127.0.0.1"
    gateway_port: Annotated[int, Field(ge=0, le=65_535)] = 8000
    publish_timeout_s: PositiveSeconds = 10.0
    sse_ping_s: PositiveSeconds = 15.0
    max_cached_simulations: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    log_read_timeout_s: PositiveSeconds = 30.0
    idempotency_window_s: Annotated[float, Field(ge=86_400, le=172_000)] = Field(
        default=86_400.0,
        description="How long an Idempotency-Key answers the same simulation (the request "
        "log keeps two days).",
    )
    log_read_prefetch: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="CONVSIM_PRICES, JSON: model -> {input, output} USD per million tokens "
        "(the orchestrator's table): what the suite conductor counts against budget_usd.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated bearer tokens; when set, every route but /healthz and "
        "/readyz needs one, and a key sees only the simulations it created.",
    )
    stream_token_ttl_s: Annotated[float, Field(ge=10, le=3_600)] = 300.0
    max_body_bytes: Annotated[int, Field(ge=1_024, le=64 * 1_048_576)] = 1_048_576
    max_message_chars: Annotated[int, Field(ge=1, le=MAX_MESSAGE_CHARS)] = MAX_MESSAGE_CHARS
    max_persona_chars: Annotated[int, Field(ge=1, le=MAX_PERSONA_CHARS)] = MAX_PERSONA_CHARS
    max_history_messages: Annotated[int, Field(ge=0, le=MAX_HISTORY_MESSAGES)] = (
        MAX_HISTORY_MESSAGES
    )
    max_turns: Annotated[int, Field(ge=1, le=MAX_TURNS_LIMIT)] = MAX_TURNS_LIMIT
    max_cached_bytes: Annotated[int, Field(ge=1_048_576, le=64 * 1_073_741_824)] = Field(
        default=256 * 1_048_576,
        description="Bound of the relay's cache of recent simulations in (estimated) bytes, "
        "next to max_cached_simulations; the least recently used one nobody follows goes first.",
    )
    max_concurrent_log_reads: Annotated[int, Field(ge=1, le=1_000)] = Field(
        default=8,
        description="Reads of the event log one gateway runs at once; a request waits up to "
        "log_read_timeout_s for its turn, then gets 503.",
    )
    log_scan_window_s: Annotated[float, Field(ge=60, le=7 * 86_400)] = Field(
        default=1_800.0,
        description="A simulation has an event in the log within this long of its creation "
        "(its id's time): a read that found none by then stops, and the id is unknown. Keep "
        "it above the longest a request may wait in the queue.",
    )
    unknown_id_ttl_s: Annotated[float, Field(ge=0, le=3_600)] = Field(
        default=10.0,
        description="How long an id the event log did not know answers 404 without reading "
        "the log again (any event of it ends that at once).",
    )
    sse_send_timeout_s: PositiveSeconds = Field(
        default=30.0,
        description="An SSE client that takes no data for this long is disconnected.",
    )
    sse_max_duration_s: PositiveSeconds = Field(
        default=3_600.0,
        description="GET .../events ends after this long; the client resumes with "
        "Last-Event-ID (a browser's EventSource does so by itself).",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_long_enough(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value()) < 16 for key in keys):
            raise ValueError("every CONVSIM_API_KEYS entry needs at least 16 characters")
        return keys

    owner_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Server secret the owner of a simulation is derived under (an HMAC of "
        "the API key), the same on every gateway, and kept: changing it hides every earlier "
        "simulation from its key. Unset: the gateways of the vhost generate one and share it "
        "through the broker (stream convsim.gateway.owner-secret).",
    )

    max_active_per_key: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=1_000,
        description="Simulations one API key may have queued or running at once (all callers "
        "together while API keys are off); beyond it POST answers 429 with Retry-After.",
    )
    active_window_s: Annotated[float, Field(ge=60, le=86_400)] = Field(
        default=3_600.0,
        description="A simulation counts as active from queued to its end, at most this long "
        "(at least CONVSIM_SIMULATION_DEADLINE_S plus the time a request may wait in the queue).",
    )
    suite_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] = Field(
        default=4,
        description="Members of a suite in flight at once when its body sets no concurrency "
        "(held across every gateway: one suite conductor decides).",
    )
    suite_members_in_flight: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=100,
        description="Members of all suites together in flight at once, shared in turn between "
        "owners (then between an owner's suites); keep it below the orchestrators' "
        "CONVSIM_MAX_CONCURRENT_SIMULATIONS summed, so conversations and single simulations "
        "never queue behind suite members.",
    )
    llm_model: Annotated[str, Field(min_length=1)] = "gpt-4o-mini"
    allowed_llm_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated LLM models a request may pick with llm.model; "
        "default: CONVSIM_LLM_MODEL only.",
    )
    max_llm_tokens: Annotated[int, Field(ge=1, le=4_096)] = Field(
        default=1_024, description="The largest llm.max_tokens a request may ask for."
    )

    @field_validator("allowed_llm_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [model.strip() for model in value.split(",") if model.strip()]
        return value

    def permitted_llm_models(self) -> list[str]:
        """CONVSIM_ALLOWED_LLM_MODELS, or the configured model alone."""
        return self.allowed_llm_models or [self.llm_model]
