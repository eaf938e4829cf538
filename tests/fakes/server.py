"""Serve an ASGI app with uvicorn on a free loopback port, in a thread with its own loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

__all__ = ["free_port", "serve_in_thread"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, lifespan: str = "off"
) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Yield the server's base URL and its event loop; stop the server on exit."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan=lifespan,
            timeout_graceful_shutdown=1,  # fakes that hang on purpose must not hold the exit
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    started = threading.Event()

    def _wait_started() -> None:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the fake server did not start")
            started.wait(0.01)

    _wait_started()
    try:
        yield f"http://127.0.0.1:{port}", loop
    finally:
        server.should_exit = True
        thread.join(timeout=10)
