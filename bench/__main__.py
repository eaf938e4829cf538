"""``python -m bench``: run N simulations of T turns at once through convsim, on this machine.

Starts RabbitMQ when none answers, a fresh vhost, the fakes (fixed latency per call), the
orchestrator(s) and the gateway; prints a table and writes JSON. ``--baseline`` also runs the
same workload against a minimal reimplementation of the original blocking design.
Exit code 0 when every transcript is complete and in order, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.broker import BenchVhost
from bench.processes import Process, free_port, pid_usage, rabbitmq_pid
from bench.rate_limit import rate_report
from bench.report import machine, percentiles, print_report
from bench.workload import run_baseline, run_ours


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="simulations at once")
    parser.add_argument("--turns", type=int, default=5, help="bot replies per simulation")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per fake call")
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="also run the original design")
    parser.add_argument(
        "--llm-rpm",
        type=int,
        help="rate-limit the fake LLM to this many calls a minute (429 above it) and give "
        "convsim the same limit (CONVSIM_LLM_LIMITS rpm); reports throughput against it",
    )
    parser.add_argument(
        "--configured-rpm", type=int, help="the rpm convsim is given (default: --llm-rpm)"
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--logs", type=Path, help="process logs here (default: a temp dir)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = args.logs or Path(tempfile.mkdtemp(prefix="convsim-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    ideal = args.latency * (1 + args.turns + (args.turns - 1))
    processes: list[Process] = []
    result: dict[str, Any] = {
        "machine": machine(),
        "workload": {
            "n": args.n,
            "turns": args.turns,
            "latency_s": args.latency,
            "orchestrators": args.orchestrators,
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
            gateway_port = free_port()
            env = {
                "CONVSIM_AMQP_URL": vhost.amqp_url,
                "CONVSIM_BOT_API_URL": fakes_url,
                "OPENAI_API_KEY": "bench-not-a-key",
                "OPENAI_BASE_URL": f"{fakes_url}/v1",
                "CONVSIM_MAX_CONCURRENT_SIMULATIONS": str(max(args.n, 200)),
                "CONVSIM_GATEWAY_PORT": str(gateway_port),
                "CONVSIM_LOG_LEVEL": "WARNING",
                "CONVSIM_METRICS_PORT": "0",
            }
            if args.llm_rpm:
                rpm = args.configured_rpm or args.llm_rpm
                env["CONVSIM_LLM_LIMITS"] = json.dumps({"*": {"rpm": rpm}})
                result["workload"]["llm_rpm"] = args.llm_rpm
                result["workload"]["configured_rpm"] = rpm
            orchestrators = []
            for index in range(args.orchestrators):
                orchestrator = Process(
                    f"orchestrator-{index + 1}", ["services.orchestrator"], env, logs
                )
                processes.append(orchestrator)
                orchestrators.append(orchestrator)
            gateway = Process("gateway", ["services.gateway"], env, logs)
            processes.append(gateway)
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            gateway.wait_http(f"{gateway_url}/readyz")
            for orchestrator in orchestrators:
                orchestrator.wait_log("app started successfully")
            watched = {p.name: p.popen.pid for p in processes}
            watched["driver (this process)"] = os.getpid()
            if (broker_pid := rabbitmq_pid()) is not None:
                watched["rabbitmq"] = broker_pid
            before = {name: pid_usage(pid) for name, pid in watched.items()}
            ours = asyncio.run(run_ours(gateway_url, vhost.amqp_url, args.n, args.turns))
            after = {name: pid_usage(pid) for name, pid in watched.items()}
            result["processes"] = {
                name: {
                    "cpu_s": round(after[name].cpu_s - before[name].cpu_s, 2),
                    "peak_rss_mb": round(after[name].peak_rss_mb, 1),
                }
                for name in after
            }
            result["ours"] = {
                "makespan_s": round(ours.makespan_s, 3),
                "ratio_to_ideal": round(ours.makespan_s / ideal, 4),
                "sse_delay": percentiles(ours.sse_delays_s),
                "topic_delay": percentiles(ours.topic_delays_s),
                "sse_delay_by_kind": {
                    kind: percentiles(delays)
                    for kind, delays in sorted(ours.sse_delays_by_kind.items())
                },
                "topic_delay_by_kind": {
                    kind: percentiles(delays)
                    for kind, delays in sorted(ours.topic_delays_by_kind.items())
                },
                "accept_lag": percentiles(ours.accept_lags_s),
                "start_lag": percentiles(ours.start_lags_s),
                "run_time": percentiles(ours.run_times_s),
                "events": ours.events,
                "events_per_s": round(ours.events / ours.makespan_s, 1),
                "complete": args.n - len(ours.errors),
                "sample_timeline": ours.sample,
            }
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
                original = asyncio.run(run_baseline(baseline_url, args.n, args.turns))
                result["baseline"] = {
                    "makespan_s": round(original.makespan_s, 3),
                    "speedup": round(original.makespan_s / ours.makespan_s, 1),
                }
                result["errors"] += [f"baseline: {e}" for e in original.errors]
        finally:
            for process in reversed(processes):
                process.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
