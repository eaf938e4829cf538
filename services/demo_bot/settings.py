"""Demo bot settings (CONVSIM_DEMO_BOT_*)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DemoBotSettings"]


class DemoBotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVSIM_DEMO_BOT_", extra="ignore")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 9404
    reply_delay_s: Annotated[float, Field(ge=0, le=30)] = Field(
        default=0.6, description="A teacher's pause before each reply, so the demo streams visibly."
    )
    max_conversations: Annotated[int, Field(ge=1)] = 100_000
