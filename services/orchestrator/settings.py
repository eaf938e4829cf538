"""Orchestrator settings, from the environment (CONVSIM_*, OPENAI_API_KEY, OPENAI_BASE_URL)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.topology import REQUEST_DELIVERY_LIMIT
from services.common.settings import SharedSettings
from services.orchestrator.endings import DEFAULT_STOP_PHRASE
from services.orchestrator.permits.limits import LimitSetting
from services.orchestrator.pricing import ModelPrice
from services.orchestrator.simulation import DEFAULT_MAX_TRANSCRIPT_BYTES

__all__ = ["EVENT_OVERHEAD_BYTES", "OrchestratorSettings"]

EVENT_OVERHEAD_BYTES = 4 * 1_048_576
"""Room for what an event carries besides its transcript: the request (at seq 2, up to about
3.3 MB of history and persona in UTF-8) and its other fields."""

MAX_TRANSCRIPT_BYTES_LIMIT = 12 * 1_048_576
"""With EVENT_OVERHEAD_BYTES: under RabbitMQ 4's default max_message_size of 16 MiB."""

DEFAULT_CONVERSATION_DEADLINE_S = 7_200.0

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class OrchestratorSettings(SharedSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSIM_", extra="ignore", populate_by_name=True)

    bot_timeout_s: PositiveSeconds = 30.0
    llm_timeout_s: PositiveSeconds = 60.0
    connect_timeout_s: PositiveSeconds = 5.0
    llm_model: Annotated[str, Field(min_length=1)] = "gpt-4o-mini"
    user_simulator: Literal["llm", "scripted"] | None = Field(
        default=None, description="Default: 'llm' when OPENAI_API_KEY is set, else 'scripted'."
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_base_delay_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    retry_max_delay_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    simulation_deadline_s: PositiveSeconds = 1_800.0
    max_concurrent_simulations: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    graceful_timeout_s: PositiveSeconds = Field(
        default=30.0,
        description="On SIGTERM: how long held simulations may run on before they are handed "
        "back mid-call (each is handed back at its next step boundary before that).",
    )
    request_lease_s: PositiveSeconds = Field(
        default=900.0,
        description="A run hands its request back (at a step boundary; the next attempt resumes "
        "from the log) once it has held it this long. Keep it well below the broker's "
        "consumer_timeout (30 min by default) minus the longest step.",
    )
    amqp_heartbeat_s: Annotated[int, Field(ge=1, le=600)] = Field(
        default=30,
        description="AMQP heartbeat: a frozen or cut-off orchestrator loses its requests to "
        "another one after about twice this.",
    )
    publish_timeout_s: PositiveSeconds = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] = Field(
        default=9405,
        description="Prometheus metrics at http://<metrics_host>:<port>/metrics; 0 turns it "
        "off. Replicas on one host need a port each.",
    )
    log_read_timeout_s: PositiveSeconds = 60.0
    log_read_prefetch: Annotated[int, Field(ge=200, le=10_000)] = 1_000
    log_scan_window_s: Annotated[float, Field(ge=60, le=7 * 86_400)] = Field(
        default=1_800.0,
        description="A simulation has an event in the log within this long of its creation "
        "(its id's time): reading a replay's original that found none by then stops, and the "
        "replay fails with replay_not_found (as the gateway's setting of the same name).",
    )
    scripted_user_delay_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    stop_phrase: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        default=DEFAULT_STOP_PHRASE,
        description="What the simulated user says to end the conversation (it is told so); "
        "stripped before anything reaches the bot.",
    )
    conversation_idle_s: PositiveSeconds = Field(
        default=1_800.0,
        description="A conversation a person steers that gets no message for this long (since "
        "its last event) ends with completed / idle.",
    )
    conversation_deadline_s: PositiveSeconds | None = Field(
        default=None,
        description="A conversation a person steers still open after this fails with "
        "deadline_exceeded (CONVSIM_SIMULATION_DEADLINE_S bounds the simulated ones). "
        "Default: 2 hours, or less when CONVSIM_REQUEST_LEASE_S is short (each lease end of a "
        "waiting conversation is one redelivery of its request).",
    )
    max_bot_reply_bytes: Annotated[int, Field(ge=1_024, le=64 * 1_048_576)] = 1_048_576
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="CONVSIM_PRICES, JSON: model -> {input, output} USD per million tokens. "
        "A model not in it has its tokens counted and cost_usd null.",
    )
    llm_limits: dict[Annotated[str, Field(min_length=1, max_length=200)], LimitSetting] = Field(
        default_factory=dict,
        description="CONVSIM_LLM_LIMITS, JSON: model (or '*' for any other) -> "
        '{"max_concurrency": N, "rpm": R, "tpm": T} (each optional): the simulated user\'s '
        "calls to that model in flight, a minute, and its LLM tokens a minute, across every "
        "orchestrator together. An openai_chat bot's calls count on its bot target's "
        "max_concurrency and rpm instead.",
    )
    max_transcript_bytes: Annotated[int, Field(ge=1_024, le=MAX_TRANSCRIPT_BYTES_LIMIT)] = Field(
        default=DEFAULT_MAX_TRANSCRIPT_BYTES,
        description="A simulation whose transcript (as encoded in its terminal event) would "
        "grow past this fails with transcript_too_large. With the request and the other "
        "fields, a terminal event stays under this plus EVENT_OVERHEAD_BYTES (4 MiB), which "
        "must stay under the broker's max_message_size (16 MiB on RabbitMQ 4).",
    )

    @model_validator(mode="after")
    def _resolve_user_simulator(self) -> OrchestratorSettings:
        if self.user_simulator is None:
            self.user_simulator = "llm" if self.openai_api_key else "scripted"
        if self.user_simulator == "llm" and not self.openai_api_key:
            raise ValueError(
                "CONVSIM_USER_SIMULATOR=llm needs OPENAI_API_KEY (any value for a local "
                "OpenAI-compatible server)"
            )
        return self

    @model_validator(mode="after")
    def _lease_fits_delivery_limit(self) -> OrchestratorSettings:
        # Every hand-back is a redelivery; leave half of the delivery limit for real faults.
        longest_s = max(self.simulation_deadline_s, self.conversation_deadline_s or 0)
        if longest_s / self.request_lease_s > REQUEST_DELIVERY_LIMIT / 2:
            raise ValueError(
                "CONVSIM_SIMULATION_DEADLINE_S and CONVSIM_CONVERSATION_DEADLINE_S / "
                f"CONVSIM_REQUEST_LEASE_S must stay below {REQUEST_DELIVERY_LIMIT // 2} "
                "(each lease end is one redelivery of the request)"
            )
        return self

    @property
    def conversation_deadline(self) -> float:
        """CONVSIM_CONVERSATION_DEADLINE_S, or 2 hours within the delivery limit's room."""
        if self.conversation_deadline_s is not None:
            return self.conversation_deadline_s
        return min(
            DEFAULT_CONVERSATION_DEADLINE_S, self.request_lease_s * REQUEST_DELIVERY_LIMIT / 2
        )

    @property
    def max_event_bytes(self) -> int:
        """No event bigger than this is sent (the transcript bound keeps them below it)."""
        return self.max_transcript_bytes + EVENT_OVERHEAD_BYTES

    @property
    def simulator_kind(self) -> Literal["llm", "scripted"]:
        return self.user_simulator or "scripted"
