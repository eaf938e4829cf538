"""Telling "nothing answers there" from "it answers too slowly" when a connection fails.

The aiohttp transports of httpx and of the openai SDK report every failed connect as a
*connect timeout*, a refused connection and an unknown host name included; the real cause is
further down the exception's chain (``__cause__``/``__context__``): an ``OSError`` such as
``ConnectionRefusedError`` or ``socket.gaierror`` for an unreachable host, a ``TimeoutError``
for one that did not answer in time.
"""

from __future__ import annotations

import errno
import os
import socket

__all__ = ["unreachable_reason"]

_MAX_CHAIN = 16


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < _MAX_CHAIN and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def unreachable_reason(exc: BaseException) -> str | None:
    """Why no connection could be made at all ("connection refused", "host name not
    resolved", ...), or None when the failure was a timeout or not about connecting."""
    chain = _chain(exc)
    if any(isinstance(link, TimeoutError) for link in chain):
        return None  # the host did not answer in time: slow, not down
    for link in chain:
        if isinstance(link, socket.gaierror):
            return "host name not resolved"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
    for link in chain:
        if isinstance(link, OSError):
            code = link.errno
            if code == errno.ECONNREFUSED:  # aiohttp's own connector error carries it too
                return "connection refused"
            return os.strerror(code) if isinstance(code, int) and code > 0 else "no route"
    return None
