"""Commands to running simulations, published on CONTROL_EXCHANGE (and kept in its log)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.events import utc_now

__all__ = ["CancelCommand", "parse_command"]


class CancelCommand(BaseModel):
    """Stop the simulation: the orchestrator holding it (now or later) publishes ``cancelled``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    command: Literal["cancel"] = "cancel"
    simulation_id: str
    requested_at: AwareDatetime = Field(default_factory=utc_now)


def parse_command(body: bytes | str) -> CancelCommand:
    return CancelCommand.model_validate_json(body)
