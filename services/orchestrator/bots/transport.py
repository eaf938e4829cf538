"""The HTTP side every bot adapter shares: one pooled client per kind, a bounded JSON POST,
and the bot_* error codes every way a call can fail maps to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from services.common.connect_errors import unreachable_reason
from services.orchestrator.errors import SimulationFailure, retry_after_seconds

__all__ = ["build_bot_http_client", "post_json"]


def build_bot_http_client(
    *, read_timeout_s: float, connect_timeout_s: float, max_connections: int
) -> httpx.AsyncClient:
    """A process's pooled client for one kind of bot, with explicit timeouts.

    The aiohttp transport keeps the httpx API; httpcore's own pool spends most of a busy
    orchestrator's CPU on bookkeeping once hundreds of connections are open."""
    return HttpxAiohttpClient(
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
    )


async def post_json(
    http: httpx.AsyncClient,
    call: str,
    url: str,
    body: Any,
    *,
    max_reply_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """POST ``body`` as JSON; the decoded JSON answer of a 200, else a SimulationFailure
    (bot_unreachable, bot_timeout, bot_http_error, bot_bad_response), marked retryable or not."""
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            raw = await _read_bounded(call, response, max_reply_bytes)
    except httpx.TransportError as exc:
        raise _transport_failure(call, exc) from exc
    if response.status_code != 200:
        status = response.status_code
        raise SimulationFailure(
            "bot_http_error",
            f"{call} answered HTTP {status}",
            retryable=status == 429 or status >= 500,
            retry_after_s=retry_after_seconds(response.headers.get("retry-after")),
            throttled=status == 429,
        )
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SimulationFailure("bot_bad_response", f"{call} answered non-JSON") from exc


async def _read_bounded(call: str, response: httpx.Response, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise SimulationFailure(
                "bot_bad_response", f"{call} answered more than {max_bytes} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_failure(call: str, exc: httpx.TransportError) -> SimulationFailure:
    """``bot_unreachable`` when nothing answers (refused, unknown host: the transport calls
    those a connect timeout too), ``bot_timeout`` when the bot was too slow."""
    reason = unreachable_reason(exc)
    if reason is None and isinstance(exc, httpx.TimeoutException):
        return SimulationFailure(
            "bot_timeout", f"{call} timed out ({type(exc).__name__})", retryable=True
        )
    return SimulationFailure(
        "bot_unreachable",
        f"{call} could not reach the bot API ({reason or type(exc).__name__})",
        retryable=True,
    )
