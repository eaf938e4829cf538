"""Settings both services read the same way: what they must agree on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topology import DEFAULT_EVENT_LOG_MAX_AGE, DEFAULT_MAX_QUEUED_SIMULATIONS

__all__ = ["BotTargetName", "SharedSettings"]

BotTargetName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class SharedSettings(BaseSettings):
    """Broker and bot-target settings; every gateway and orchestrator must have the same.

    A settings error never shows what was given (``hide_input_in_errors``): the values hold
    API keys, the OpenAI key and the AMQP URL's password. Subclasses' ``model_config`` is
    merged with this one, so every service's settings inherit it."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    event_log_max_age: Annotated[str, Field(pattern=r"^\d+[YMDhms]$")] = DEFAULT_EVENT_LOG_MAX_AGE
    max_queued_simulations: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=DEFAULT_MAX_QUEUED_SIMULATIONS,
        description="Length limit of the request queue (x-max-length, reject-publish): over "
        "it the gateway answers 503. Part of the queue's declaration: change it on every "
        "service at once, on an empty queue.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json: one JSON object per line; text: for people; auto: text on a "
        "terminal, JSON otherwise.",
    )
    bot_targets: dict[BotTargetName, AnyHttpUrl] = Field(
        default_factory=dict,
        description='Named bot APIs a request may pick with "bot_target", as JSON: '
        '{"staging": "https://bots.example/api"}.',
    )
