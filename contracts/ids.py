"""Simulation ids: UUIDv7, so an id tells when its simulation was created.

The gateway uses that to read a simulation it has not seen from the event log, starting at
the right place instead of at the beginning of the stream.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import uuid_utils.compat as uuid_compat

__all__ = ["created_at_of", "new_simulation_id"]


def new_simulation_id() -> str:
    return str(uuid_compat.uuid7())


def created_at_of(simulation_id: str) -> datetime | None:
    """When the simulation with this id was created; None if it is not a UUIDv7."""
    try:
        parsed = uuid.UUID(simulation_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    unix_ms = parsed.int >> 80  # the first 48 bits of a UUIDv7 are its Unix time in ms
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
