"""``python -m bench.permit_handon``: the orchestrator's own cost of handing a released permit
on to the next call waiting for it, with W calls waiting in one process (no broker: the
permit's message is a stand-in whose channel is open). With a cap of 50 and 300 simulations,
about 250 calls wait for every bot call's permit."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

from aio_pika.abc import AbstractIncomingMessage

from services.orchestrator.permits.names import PermitQueues
from services.orchestrator.permits.pool import BrokerPermit, _Resource

__all__ = ["hand_on_cost_s"]


class _OpenChannel:
    is_closed = False


class _StandInMessage:
    channel = _OpenChannel()


async def hand_on_cost_s(waiting: int, rounds: int) -> float:
    """Seconds of one hand-on (the pool's bookkeeping only), with ``waiting`` calls waiting;
    each served call waits again, so the number waiting stays the same."""
    loop = asyncio.get_running_loop()
    resource = _Resource(PermitQueues("bench", 50), hand_on_s=float("inf"))
    message = cast("AbstractIncomingMessage", _StandInMessage())
    for _ in range(waiting):
        resource.waiters.append("single", loop.create_future())
    began = time.perf_counter()
    for _ in range(rounds):
        if not resource.hand_on(BrokerPermit(message, resource, loop.time())):
            raise RuntimeError("the permit was not handed on")
        resource.waiters.append("single", loop.create_future())
    return (time.perf_counter() - began) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waiting", default="1,50,250,1000", help="comma-separated W")
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    for waiting in (int(w) for w in args.waiting.split(",")):
        cost_s = asyncio.run(hand_on_cost_s(waiting, args.rounds))
        print(f"{waiting:5d} waiting: {cost_s * 1e6:6.1f} µs per hand-on")


if __name__ == "__main__":
    main()
