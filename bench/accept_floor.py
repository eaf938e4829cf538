"""``python -m bench.accept_floor``: the least an accept can cost with the parts the gateway is
built from, and how late the last of a burst is answered.

A bare server, in its own process, on the gateway's stack (uvicorn with uvloop and httptools,
FastAPI, a pydantic body, sse-starlette) answers ``POST /accept`` with one SSE event and ends
the stream: no relay, no metrics, no access checks. With ``publish`` it first publishes the
body once to a quorum queue of a fresh vhost (persistent, mandatory, confirmed), which is what
an accept must do before it answers. ``stream`` is the bare server answering the same bytes
through Starlette's ``StreamingResponse`` instead of sse-starlette (what sse-starlette's tasks
per stream cost). The driver sends ``--n`` such requests at once (the
bench's own aiohttp driver) ``--rounds`` times, and reports the server's CPU per request and
when the burst's requests got their event (p50 / p99 from the burst's start).

Whatever the gateway adds, one gateway process cannot accept a burst of N faster than N times
this CPU: that is the floor the accept target is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import uvicorn
from aio_pika.abc import AbstractChannel
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from bench.broker import BenchVhost
from bench.modes import Modes
from bench.processes import Process, free_port
from bench.report import percentiles
from contracts.requests import SimulationCreate

__all__ = ["main"]

QUEUE = "accept-floor"


def _app(amqp_url: str | None, *, plain_stream: bool = False) -> FastAPI:
    channel: AbstractChannel | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal channel
        if amqp_url is None:
            yield
            return
        connection = await aio_pika.connect_robust(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        try:
            yield
        finally:
            await connection.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/accept")
    async def accept(body: SimulationCreate) -> Response:
        encoded = body.model_dump_json().encode()
        if channel is not None:
            await channel.default_exchange.publish(
                aio_pika.Message(encoded, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=QUEUE,
                mandatory=True,
                timeout=30,
            )

        async def one_event() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(data=encoded.decode(), event="queued", id="1")

        if plain_stream:

            async def one_chunk() -> AsyncIterator[bytes]:
                yield b"id: 1\r\nevent: queued\r\ndata: " + encoded + b"\r\n\r\n"

            return StreamingResponse(one_chunk(), media_type="text/event-stream")
        return EventSourceResponse(one_event(), ping=15, send_timeout=30)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def serve(port: int, amqp_url: str | None, *, plain_stream: bool = False) -> None:
    uvicorn.run(
        _app(amqp_url, plain_stream=plain_stream),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


async def _burst(
    url: str, n: int, body: dict[str, Any], server_cpu_s: Callable[[], float]
) -> tuple[list[float], float]:
    """Seconds from the burst's start to each request's first event, and the server's CPU
    seconds for the burst (after a first burst that opens the connections)."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=n + 10), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def one(started: float) -> float:
            async with session.post(
                url, json=body, headers={"Accept": "text/event-stream"}
            ) as response:
                response.raise_for_status()
                async for line in response.content:
                    if line.startswith(b"data:"):
                        return time.monotonic() - started  # the first event: leave
            raise RuntimeError("the stream ended without an event")

        await asyncio.gather(*(one(time.monotonic()) for _ in range(n)))  # warm: connections
        cpu_before = server_cpu_s()
        started = time.monotonic()
        answered = list(await asyncio.gather(*(one(started) for _ in range(n))))
        return answered, server_cpu_s() - cpu_before


def measure(kind: str, n: int, rounds: int, amqp_url: str | None, logs: Path) -> dict[str, Any]:
    """``bare``, ``stream``, ``publish`` (the bare server) or ``gateway`` (the real one, no
    orchestrator: each request stays queued, and the driver leaves its stream after
    ``queued``)."""
    port = free_port()
    if kind == "gateway":
        assert amqp_url is not None
        env = {
            "CONVSIM_AMQP_URL": amqp_url,
            "CONVSIM_GATEWAY_PORT": str(port),
            "CONVSIM_LOG_LEVEL": "WARNING",
            "CONVSIM_METRICS_PORT": "0",
            "CONVSIM_MAX_ACTIVE_PER_KEY": str(10 * n * rounds),  # nothing ends: no orchestrator
        }
        server = Process("accept-gateway", ["services.gateway"], env, logs)
        ready, path = f"http://127.0.0.1:{port}/readyz", "/simulate"
    else:
        args = ["bench.accept_floor", "serve", "--port", str(port)]
        args += ["--amqp-url", amqp_url] if amqp_url else []
        args += ["--plain-stream"] if kind == "stream" else []
        server = Process(f"accept-{kind}", args, {}, logs)
        ready, path = f"http://127.0.0.1:{port}/ready", "/accept"
    try:
        server.wait_http(ready)
        body = Modes().body(5)
        rows = []
        for _ in range(rounds):
            answered, cpu_s = asyncio.run(
                _burst(f"http://127.0.0.1:{port}{path}", n, body, lambda: server.usage().cpu_s)
            )
            rows.append({"answered": percentiles(answered), "cpu_ms": cpu_s * 1000 / n})
    finally:
        server.stop()
    return {"kind": kind, "n": n, "rounds": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accept_floor", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_args = sub.add_parser("serve", help="(internal) the bare server")
    serve_args.add_argument("--port", type=int, required=True)
    serve_args.add_argument("--amqp-url")
    serve_args.add_argument("--plain-stream", action="store_true")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument(
        "--kinds",
        default="bare,publish,gateway",
        help="which servers, in order, of bare, stream, publish and gateway",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.amqp_url, plain_stream=args.plain_stream)
        return 0
    kinds = args.kinds.split(",")
    if unknown := set(kinds) - {"bare", "stream", "publish", "gateway"}:
        parser.error(
            f"--kinds: no server {', '.join(sorted(unknown))} (bare, stream, publish, gateway)"
        )
    logs = Path(tempfile.mkdtemp(prefix="convsim-accept-floor-"))
    results = []
    for kind in kinds:
        if kind in ("bare", "stream"):
            results.append(measure(kind, args.n, args.rounds, None, logs))
        else:
            with BenchVhost() as vhost:
                results.append(measure(kind, args.n, args.rounds, vhost.amqp_url, logs))
    for result in results:
        for number, row in enumerate(result["rounds"], 1):
            answered = row["answered"]
            print(
                f"{result['kind']:<8} N={result['n']} round {number}: "
                f"{row['cpu_ms']:.2f} ms server CPU per accept, first event p50 "
                f"{answered['p50_ms']:.0f} / p99 {answered['p99_ms']:.0f} / max "
                f"{answered['max_ms']:.0f} ms"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
