"""Serves a Prometheus registry on its own port, in the service's event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app

__all__ = ["serve_metrics"]

logger = logging.getLogger(__name__)


class _MetricsServer(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM belongs to the service's shutdown."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[None]:
    """Serve /metrics on host:port while the context is open (port 0: off).

    A port already taken is logged, not fatal: a worker without metrics beats no worker."""
    if port == 0:
        yield
        return
    server = _MetricsServer(
        uvicorn.Config(
            make_asgi_app(registry), host=host, port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        try:
            await task
        except (OSError, SystemExit) as exc:  # uvicorn exits when it cannot bind
            logger.error("metrics were not served on %s:%d: %r", host, port, exc)
