"""How late the driver's own event loop runs what is due: a task asks to wake every
``PERIOD_S`` and records how much later it woke. Every delay the driver measures includes this
lag (its reads of the streams and of the topic wait for the same loop), so a lag close to the
reported delays says the driver, not convsim, is what was slow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["PERIOD_S", "loop_lag"]

PERIOD_S = 0.01


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """Yields the list the lags (seconds) are appended to while the block runs."""
    lags: list[float] = []
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        while True:
            due = loop.time() + PERIOD_S
            await asyncio.sleep(PERIOD_S)
            lags.append(max(0.0, loop.time() - due))

    task = asyncio.create_task(probe())
    try:
        yield lags
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
