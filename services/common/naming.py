"""Names that tell ops which process is which (RabbitMQ connection names, log fields)."""

from __future__ import annotations

import os
import socket

from yarl import URL

__all__ = ["connection_name", "with_connection_name"]


def connection_name(service: str) -> str:
    """``convsim-<service>@<host>:<pid>``, shown in the RabbitMQ management UI."""
    return f"convsim-{service}@{socket.gethostname()}:{os.getpid()}"


def with_connection_name(amqp_url: str, service: str, *, heartbeat_s: int | None = None) -> str:
    """The AMQP URL with the connection name aiormq announces to the broker (``?name=``) and,
    when given, the heartbeat to negotiate."""
    query: dict[str, str] = {"name": connection_name(service)}
    if heartbeat_s is not None:
        query["heartbeat"] = str(heartbeat_s)
    return str(URL(amqp_url).update_query(query))
