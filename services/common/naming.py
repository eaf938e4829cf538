"""Names that tell ops which process is which (RabbitMQ connection names, log fields)."""

from __future__ import annotations

import os
import socket

__all__ = ["connection_name"]


def connection_name(service: str) -> str:
    """``convsim-<service>@<host>:<pid>``, shown in the RabbitMQ management UI."""
    return f"convsim-{service}@{socket.gethostname()}:{os.getpid()}"
