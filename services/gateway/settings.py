"""Gateway settings, from the environment (CONVSIM_*)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topology import DEFAULT_EVENT_LOG_MAX_AGE

__all__ = ["GatewaySettings"]

PositiveSeconds = Annotated[float, Field(gt=0, le=3_600)]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSIM_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    gateway_host: str = "127.0.0.1"
    gateway_port: Annotated[int, Field(ge=0, le=65_535)] = 8000
    event_log_max_age: Annotated[str, Field(pattern=r"^\d+[YMDhms]$")] = DEFAULT_EVENT_LOG_MAX_AGE
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
