"""Counting the asyncio tasks a piece of code creates (a task per event is a turn of the event
loop per event, which a busy gateway pays for in delay)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def tasks_created() -> Iterator[list[str]]:
    """The names of the coroutines of every task created on the running loop meanwhile,
    whoever creates it (an async generator left open by an earlier test on the same loop
    would be finalised in a task too: each test here has a loop of its own)."""
    loop = asyncio.get_running_loop()
    created: list[str] = []
    before = loop.get_task_factory()

    def counting(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], /, **options: Any
    ) -> asyncio.Future[Any]:
        created.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **options)

    loop.set_task_factory(counting)  # type: ignore[arg-type]  # typeshed: a generic protocol
    try:
        yield created
    finally:
        loop.set_task_factory(before)
