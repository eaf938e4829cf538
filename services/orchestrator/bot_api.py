"""Client of the bot API under test (initConversation and webhook), over one pooled httpx client."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from services.orchestrator.connect_errors import unreachable_reason
from services.orchestrator.errors import SimulationFailure, retry_after_seconds

__all__ = ["INIT_PATH", "WEBHOOK_PATH", "BotApiClient", "build_bot_http_client"]

INIT_PATH = "/robot-ai-lesson/api/v1/bot/initConversation"
WEBHOOK_PATH = "/robot-ai-lesson/api/v1/bot/webhook"


def build_bot_http_client(
    *, read_timeout_s: float, connect_timeout_s: float, max_connections: int
) -> httpx.AsyncClient:
    """The process's one pooled client for every bot API target, with explicit timeouts.

    The aiohttp transport keeps the httpx API; httpcore's own pool spends most of a busy
    orchestrator's CPU on bookkeeping once hundreds of connections are open."""
    return HttpxAiohttpClient(
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
    )


class BotApiClient:
    """The two calls of the bot API contract at one base URL (from configuration, never from a
    request); every way they can fail is a SimulationFailure, marked retryable or not."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, max_reply_bytes: int) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._max_reply_bytes = max_reply_bytes

    async def init_conversation(
        self, bot_id: int, conversation_id: str, input_slots: dict[str, Any]
    ) -> None:
        body = {"bot_id": bot_id, "conversation_id": conversation_id, "input_slots": input_slots}
        await self._post("initConversation", INIT_PATH, body)

    async def send_message(self, conversation_id: str, message: str) -> str:
        """Send the user's message; return the bot's reply (``data.message``)."""
        payload = await self._post(
            "webhook", WEBHOOK_PATH, {"conversation_id": conversation_id, "message": message}
        )
        data = payload.get("data")
        reply = data.get("message") if isinstance(data, dict) else None
        if not isinstance(reply, str) or not reply.strip():
            raise SimulationFailure("bot_empty_reply", "webhook answered without data.message")
        return reply

    async def _post(self, call: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.stream("POST", self._base_url + path, json=body) as response:
                raw = await self._read_bounded(call, response)
        except httpx.TransportError as exc:
            raise _transport_failure(call, exc) from exc
        if response.status_code != 200:
            status = response.status_code
            raise SimulationFailure(
                "bot_http_error",
                f"{call} answered HTTP {status}",
                retryable=status == 429 or status >= 500,
                retry_after_s=retry_after_seconds(response.headers.get("retry-after")),
            )
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SimulationFailure("bot_bad_response", f"{call} answered non-JSON") from exc
        if not isinstance(payload, dict):
            raise SimulationFailure(
                "bot_bad_response", f"{call} answered JSON that is not an object"
            )
        if payload.get("status") != 0:
            raise SimulationFailure(
                "bot_rejected",
                f"{call} answered status {payload.get('status')!r}: "
                f"{str(payload.get('msg'))[:200]}",
            )
        return payload

    async def _read_bounded(self, call: str, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_reply_bytes:
                raise SimulationFailure(
                    "bot_bad_response",
                    f"{call} answered more than {self._max_reply_bytes} bytes",
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
