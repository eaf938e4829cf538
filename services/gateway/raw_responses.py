"""Error answers sent by pure ASGI middleware (before FastAPI runs): JSON ``{"detail": ...}``."""

from __future__ import annotations

import json

from starlette.types import Send

__all__ = ["send_problem"]


async def send_problem(
    send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
