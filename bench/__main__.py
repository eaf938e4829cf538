"""``python -m bench``: run N simulations of T turns at once through convsim, on this machine.

Starts RabbitMQ when none answers, a fresh vhost, the fakes (fixed latency per call), the
orchestrator(s), the gateway (and the judge with ``--judge``); prints a table and writes JSON.
``--client typical`` follows each simulation as the README tells users to; ``--stack floor`` runs
the same workload against the floor stack (``bench.floor``: the least the contract needs, from
convsim's parts) instead of convsim's services, ``--stack floor-gateway`` against convsim's
orchestrators behind the floor stack's gateway (which service a gap comes from); ``--bot llm``,
``--judge`` and ``--limits`` switch features on; ``--baseline`` also runs the same workload
against a faithful reimplementation of the original backend; ``--capacity`` searches the
largest N that still meets the targets.
Exit code 0 when every transcript is complete and in order, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.broker import BenchVhost
from bench.capacity import CAPACITY_STEPS, search_capacity
from bench.modes import Modes, judge_concurrency
from bench.processes import DRIVING, Process, free_port, pid_usage, rabbitmq_pid
from bench.rate_limit import rate_report
from bench.report import (
    STACK_TITLES,
    cpu_per_event,
    machine,
    print_capacity,
    print_report,
    summarise,
)
from bench.workload import run_baseline, run_ours

READY = "app started successfully"
"""In an orchestrator's or a judge's log (convsim's and the floor's) once it consumes."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="simulations at once")
    parser.add_argument("--turns", type=int, default=5, help="bot replies per simulation")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per fake call")
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument(
        "--gateways",
        type=int,
        default=1,
        help="gateway processes (replicas); the driver sends simulation i to gateway i mod K",
    )
    parser.add_argument(
        "--client",
        choices=["bench", "typical", "typical-aiohttp"],
        default="bench",
        help="bench: the bench's own SSE driver (POST /simulate, aiohttp); typical: httpx, "
        "POST /v1/simulations then GET /v1/simulations/{id}/events, counting only the events "
        "published after its stream opened; typical-aiohttp: the same with httpx's aiohttp "
        "transport",
    )
    parser.add_argument(
        "--bot",
        choices=["api", "llm"],
        default="api",
        help="api: the robot_ai_lesson bot API; llm: an openai_chat bot target on the fakes",
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="run the judge service; every simulation has one criterion and is complete once "
        "judged",
    )
    parser.add_argument(
        "--limits",
        action="store_true",
        help="give the bot target max_concurrency --cap (permits on the broker for every call)",
    )
    parser.add_argument("--cap", type=int, default=50, help="the bot target's cap with --limits")
    parser.add_argument("--baseline", action="store_true", help="also run the original design")
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="run each N of --capacity-steps in turn (not --n) until one misses makespan ≤ "
        "1.25 x ideal or live-event p99 ≤ 250 ms; report each step and the largest N that met both",
    )
    parser.add_argument(
        "--capacity-steps",
        type=lambda text: [int(step) for step in text.split(",")],
        default=CAPACITY_STEPS,
        help="comma-separated N to try with --capacity (default: %(default)s)",
    )
    parser.add_argument(
        "--llm-rpm",
        type=int,
        help="rate-limit the fake LLM to this many calls a minute (429 above it) and give "
        "convsim the same limit (CONVSIM_LLM_LIMITS rpm); reports throughput against it",
    )
    parser.add_argument(
        "--configured-rpm", type=int, help="the rpm convsim is given (default: --llm-rpm)"
    )
    parser.add_argument(
        "--stack",
        choices=list(STACK_TITLES),
        default="convsim",
        help="convsim: the services; floor: bench.floor's minimal gateway, orchestrator and "
        "(with --judge) judge, with --bot llm and --limits too; floor-gateway: convsim's "
        "orchestrators behind bench.floor's gateway, the default workload only (the bench "
        "client; neither floor stack with --llm-rpm)",
    )
    parser.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="before the run, measure each process's CPU at rest for this many seconds, and "
        "report what that rate costs per event over the run's makespan",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--logs", type=Path, help="process logs here (default: a temp dir)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING"],
        help="the services' CONVSIM_LOG_LEVEL (default WARNING; the services' own default is INFO)",
    )
    args = parser.parse_args(argv)
    if args.capacity and args.baseline:
        parser.error("--baseline is one run's comparison: leave it out of --capacity")
    if args.stack != "convsim" and args.llm_rpm:
        parser.error(f"--stack {args.stack} runs without --llm-rpm")
    if args.stack == "floor-gateway" and (
        args.client != "bench" or args.bot != "api" or args.judge or args.limits
    ):
        parser.error(
            "--stack floor-gateway runs the default workload only: the bench client, --bot "
            "api, no --judge or --limits"
        )
    return args


def modes_of(args: argparse.Namespace) -> Modes:
    return Modes(bot=args.bot, judge=args.judge, cap=args.cap if args.limits else None)


def run(args: argparse.Namespace, n: int | None = None) -> dict[str, Any]:
    """One run of ``n`` (default ``--n``) simulations on a fresh vhost and fresh processes."""
    n = n or args.n
    logs = args.logs or Path(tempfile.mkdtemp(prefix="convsim-bench-"))
    logs = logs / f"n{n}" if args.capacity else logs
    logs.mkdir(parents=True, exist_ok=True)
    modes = modes_of(args)
    ideal = modes.ideal_s(n, args.turns, args.latency)
    processes: list[Process] = []
    result: dict[str, Any] = {
        "machine": machine(),
        "workload": {
            "n": n,
            "turns": args.turns,
            "latency_s": args.latency,
            "orchestrators": args.orchestrators,
            "gateways": args.gateways,
            "client": args.client,
            "bot": modes.bot,
            "judge": modes.judge,
            "bot_cap": modes.cap,
            "log_level": args.log_level,
            "stack": args.stack,
        },
        "ideal_s": ideal,
        "logs": str(logs),
    }
    with BenchVhost() as vhost:
        try:
            fakes_port = free_port()
            fakes = Process(
                "fakes",
                [
                    "bench.fakes",
                    "--port",
                    str(fakes_port),
                    "--latency",
                    str(args.latency),
                    *(["--llm-rpm", str(args.llm_rpm)] if args.llm_rpm else []),
                ],
                {},
                logs,
            )
            processes.append(fakes)
            fakes_url = f"http://127.0.0.1:{fakes_port}"
            fakes.wait_http(f"{fakes_url}/ready")
            env = {
                "CONVSIM_AMQP_URL": vhost.amqp_url,
                "CONVSIM_BOT_API_URL": fakes_url,
                "OPENAI_API_KEY": "bench-not-a-key",
                "OPENAI_BASE_URL": f"{fakes_url}/v1",
                "CONVSIM_MAX_CONCURRENT_SIMULATIONS": str(max(n, 200)),
                "CONVSIM_LOG_LEVEL": args.log_level,
                "CONVSIM_METRICS_PORT": "0",
                **modes.env(fakes_url),
            }
            if args.llm_rpm:
                rpm = args.configured_rpm or args.llm_rpm
                env["CONVSIM_LLM_LIMITS"] = json.dumps({"*": {"rpm": rpm}})
                result["workload"]["llm_rpm"] = args.llm_rpm
                result["workload"]["configured_rpm"] = rpm
            orchestrators: list[Process] = []
            for index in range(args.orchestrators):
                orchestrator = Process(
                    f"orchestrator-{index + 1}",
                    _orchestrator_args(args.stack, vhost.amqp_url, fakes_url, n, modes),
                    env,
                    logs,
                )
                processes.append(orchestrator)
                orchestrators.append(orchestrator)
            if args.stack == "floor-gateway":
                # the floor's gateway joins the topology convsim's orchestrators declare
                _wait_started(orchestrators)
            if modes.judge:
                judge = Process(
                    "judge",
                    _judge_args(args.stack, vhost.amqp_url, fakes_url, n),
                    env | modes.judge_env(n),
                    logs,
                )
                processes.append(judge)
            gateways: dict[str, Process] = {}
            for index in range(args.gateways):
                port = free_port()
                name = "gateway" if args.gateways == 1 else f"gateway-{index + 1}"
                gateway = Process(
                    name,
                    _gateway_args(args.stack, vhost.amqp_url, port),
                    env | {"CONVSIM_GATEWAY_PORT": str(port)},
                    logs,
                )
                processes.append(gateway)
                gateways[f"http://127.0.0.1:{port}"] = gateway
            for url, gateway in gateways.items():
                gateway.wait_http(f"{url}/readyz")
            gateway_urls = list(gateways)
            _wait_started(orchestrators)
            if modes.judge:
                judge.wait_log(READY)
            watched = {p.name: p.popen.pid for p in processes}
            watched["driver (this process)"] = os.getpid()
            if (broker_pid := rabbitmq_pid()) is not None:
                watched["rabbitmq"] = broker_pid
            if args.idle_s:
                result["idle_cpu_s_per_s"] = _cpu_at_rest(watched, args.idle_s)
            before = {name: pid_usage(pid) for name, pid in watched.items()}
            (logs / DRIVING).touch()
            ours = asyncio.run(
                run_ours(gateway_urls, vhost.amqp_url, n, args.turns, modes, args.client)
            )
            after = {name: pid_usage(pid) for name, pid in watched.items()}
            result["processes"] = {
                name: {
                    "cpu_s": round(after[name].cpu_s - before[name].cpu_s, 2),
                    "peak_rss_mb": round(after[name].peak_rss_mb, 1),
                }
                for name in after
            }
            result["ours"] = summarise(ours, n, ideal, result["processes"])
            if args.idle_s:
                result["ours"]["idle_cpu_ms_per_event"] = cpu_per_event(
                    {
                        name: {"cpu_s": rate * ours.makespan_s}
                        for name, rate in result["idle_cpu_s_per_s"].items()
                    },
                    ours.published,
                )
            result["errors"] = ours.errors
            if args.llm_rpm:
                stats = httpx.get(f"{fakes_url}/stats", timeout=30).json()
                result["llm_rate"] = rate_report(stats)
            if args.baseline:
                baseline_port = free_port()
                baseline = Process(
                    "baseline",
                    ["bench.baseline", "--port", str(baseline_port), "--bot-url", fakes_url],
                    {},
                    logs,
                )
                processes.append(baseline)
                baseline_url = f"http://127.0.0.1:{baseline_port}"
                baseline.wait_http(f"{baseline_url}/docs")
                original = asyncio.run(run_baseline(baseline_url, n, args.turns))
                result["baseline"] = {
                    "makespan_s": round(original.makespan_s, 3),
                    "speedup": round(original.makespan_s / ours.makespan_s, 1),
                }
                result["errors"] += [f"baseline: {e}" for e in original.errors]
        finally:
            for process in reversed(processes):
                process.stop()
    return result


def _cpu_at_rest(watched: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU seconds per second while nothing is sent (a timed measurement)."""
    before = {name: pid_usage(pid).cpu_s for name, pid in watched.items()}
    time.sleep(seconds)
    return {
        name: round((pid_usage(pid).cpu_s - before[name]) / seconds, 4)
        for name, pid in watched.items()
    }


def _wait_started(orchestrators: list[Process]) -> None:
    for orchestrator in orchestrators:
        orchestrator.wait_log(READY)


def _orchestrator_args(
    stack: str, amqp_url: str, fakes_url: str, n: int, modes: Modes
) -> list[str]:
    if stack != "floor":
        return ["services.orchestrator"]
    return [
        "bench.floor.orchestrator",
        *("--amqp-url", amqp_url, "--bot-url", fakes_url, "--llm-url", f"{fakes_url}/v1"),
        *("--in-flight", str(max(n, 200)), "--bot", modes.bot),
        *(["--cap", str(modes.cap)] if modes.cap else []),
    ]


def _judge_args(stack: str, amqp_url: str, fakes_url: str, n: int) -> list[str]:
    if stack != "floor":
        return ["services.judge"]
    return [
        "bench.floor.judge",
        *("--amqp-url", amqp_url, "--llm-url", f"{fakes_url}/v1"),
        *("--concurrency", str(judge_concurrency(n))),
    ]


def _gateway_args(stack: str, amqp_url: str, port: int) -> list[str]:
    if stack == "convsim":
        return ["services.gateway"]
    floor = ["bench.floor.gateway", "--port", str(port), "--amqp-url", amqp_url]
    return [*floor, "--join-topology"] if stack == "floor-gateway" else floor


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.capacity:
        capacity = search_capacity(args.capacity_steps, lambda n: _reported(run(args, n)))
        print_capacity(capacity)
        if args.json:
            args.json.write_text(json.dumps(capacity, indent=2) + "\n")
        return 1 if any(step["errors"] for step in capacity["steps"]) else 0
    result = _reported(run(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0


def _reported(result: dict[str, Any]) -> dict[str, Any]:
    print_report(result)
    return result


if __name__ == "__main__":
    sys.exit(main())
