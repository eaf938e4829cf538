"""Keeping what a service built at startup out of the garbage collector's full passes."""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_heap"]

logger = logging.getLogger(__name__)


async def freeze_startup_heap() -> None:
    """Collect once, then move every object that survived startup (modules, the app, its
    models and schemas, its clients) to the collector's permanent generation.

    Those objects live as long as the process, yet every full collection, which stops the
    event loop, walked them again (measured in docs/benchmarks.md, "The startup heap frozen").
    Await it once, when startup is done, from the service's entry point: a process that
    builds apps again and again (a test run) must not freeze each one's heap."""
    gc.collect()
    gc.freeze()
    logger.info(
        "startup heap frozen: %d objects kept out of full collections", gc.get_freeze_count()
    )
