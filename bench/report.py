"""The numbers of a run: a table on the terminal and a JSON document."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.workload import OursResult

__all__ = [
    "SERVICES",
    "STACK_TITLES",
    "cpu_per_event",
    "machine",
    "percentiles",
    "print_capacity",
    "print_report",
    "summarise",
]

SERVICES = ("orchestrator", "gateway", "judge", "rabbitmq")
"""The processes whose CPU counts in "CPU per event" (not the driver, not the fakes)."""

STACK_TITLES = {
    "convsim": "convsim",
    "floor": "the floor stack (bench/floor)",
    "floor-gateway": "convsim's orchestrators behind the floor gateway (bench/floor)",
}
"""What can run the workload (``--stack``), and how the report's title names it."""


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"p50_ms": round(at(0.5), 1), "p99_ms": round(at(0.99), 1), "max_ms": round(at(1.0), 1)}


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_kb = int(meminfo.read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def cpu_per_event(processes: dict[str, dict[str, float]], published: int) -> dict[str, float]:
    """CPU milliseconds per published event of each service, and their ``total``."""
    per_event = {
        name: round(usage["cpu_s"] * 1000 / max(published, 1), 3)
        for name, usage in processes.items()
        if name.startswith(SERVICES)
    }
    return per_event | {"total": round(sum(per_event.values()), 3)}


def summarise(
    ours: OursResult, n: int, ideal_s: float, processes: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The JSON of our run. ``sse_delay`` is the live-event delay of the driver used."""
    return {
        "makespan_s": round(ours.makespan_s, 3),
        "ratio_to_ideal": round(ours.makespan_s / ideal_s, 4),
        "sse_delay": percentiles(ours.sse_delays_s),
        "topic_delay": percentiles(ours.topic_delays_s),
        "sse_delay_by_kind": {
            kind: percentiles(delays) for kind, delays in sorted(ours.sse_delays_by_kind.items())
        },
        "topic_delay_by_kind": {
            kind: percentiles(delays) for kind, delays in sorted(ours.topic_delays_by_kind.items())
        },
        "accept_lag": percentiles(ours.accept_lags_s),
        "driver_loop_lag": percentiles(ours.driver_loop_lags_s),
        "start_lag": percentiles(ours.start_lags_s),
        "run_time": percentiles(ours.run_times_s),
        "verdict_delay": percentiles(ours.verdict_delays_s),
        "verdicts": len(ours.verdict_delays_s),
        "events": ours.events,
        "live_events": len(ours.sse_delays_s),
        "replayed_events": ours.replayed,
        "published_events": ours.published,
        "events_per_s": round(ours.events / ours.makespan_s, 1),
        "cpu_ms_per_event": cpu_per_event(processes, ours.published),
        "complete": n - len(ours.errors),
        "sample_timeline": ours.sample,
    }


def print_report(result: dict[str, Any]) -> None:
    console = Console(width=max(Console().width, 110))
    workload = result["workload"]
    modes = [f"bot {workload.get('bot', 'api')}"]
    if workload.get("judge"):
        modes.append("judge")
    if workload.get("bot_cap"):
        modes.append(f"bot cap {workload['bot_cap']}")
    client = workload.get("client", "bench")
    stack = STACK_TITLES.get(workload.get("stack", "convsim"), "convsim")
    table = Table(
        title=f"{stack} bench: N={workload['n']} T={workload['turns']} "
        f"latency={workload['latency_s']} s, {workload['orchestrators']} orchestrator(s), "
        f"{workload.get('gateways', 1)} gateway(s), "
        f"{client} client, {', '.join(modes)}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    ours = result["ours"]
    table.add_row("ideal makespan", f"{result['ideal_s']:.2f} s")
    table.add_row("makespan", f"{ours['makespan_s']:.2f} s")
    table.add_row("makespan / ideal", f"{ours['ratio_to_ideal']:.3f}")
    if rate := result.get("llm_rate"):
        table.add_row("LLM limit", f"{rate['allowed_per_s']:.2f} calls/s")
        if "throughput_per_s" in rate:
            table.add_row(
                f"LLM calls/s after {rate['warm_up_s']:.0f} s warm-up",
                f"{rate['throughput_per_s']:.2f} ({rate['ratio_to_allowed']:.1%} of the limit)",
            )
        table.add_row(
            "LLM 429s (after warm-up)", f"{rate['refused']} ({rate.get('refused_after_warm_up')})"
        )
    for name, key in (
        (f"live-event delay, {client} client", "sse_delay"),
        ("event delay, topic", "topic_delay"),
        ("run start → queued", "accept_lag"),
        ("queued → started", "start_lag"),
        ("queued → end", "run_time"),
        ("the driver's own event-loop lag", "driver_loop_lag"),
        *((("verdict delay (end → judged)", "verdict_delay"),) if workload.get("judge") else ()),
    ):
        delay = ours[key]
        table.add_row(
            f"{name} (p50 / p99 / max)",
            f"{delay['p50_ms']:.0f} / {delay['p99_ms']:.0f} / {delay['max_ms']:.0f} ms",
        )
    for where in ("sse", "topic"):
        for kind, delay in ours.get(f"{where}_delay_by_kind", {}).items():
            table.add_row(
                f"  {where.upper() if where == 'sse' else where} delay of {kind}",
                f"{delay['p50_ms']:.0f} / {delay['p99_ms']:.0f} / {delay['max_ms']:.0f} ms",
            )
    table.add_row("events through the gateway", f"{ours['events']} ({ours['events_per_s']:.0f}/s)")
    if ours.get("replayed_events"):
        table.add_row(
            "  of which replayed (before the stream opened)", str(ours["replayed_events"])
        )
    if "published_events" in ours:
        table.add_row("events published", str(ours["published_events"]))
        table.add_row("CPU per event (services)", _cpu_row(ours["cpu_ms_per_event"]))
    if "idle_cpu_ms_per_event" in ours:
        table.add_row("  of which at rest (--idle-s)", _cpu_row(ours["idle_cpu_ms_per_event"]))
    if workload.get("judge"):
        table.add_row("simulations judged", f"{ours['verdicts']} of {workload['n']}")
    table.add_row("transcripts complete and in order", f"{ours['complete']} of {workload['n']}")
    for name, usage in result["processes"].items():
        table.add_row(
            f"{name}: CPU / peak RSS", f"{usage['cpu_s']:.1f} s / {usage['peak_rss_mb']:.0f} MB"
        )
    if "baseline" in result:
        table.add_row("original design: makespan", f"{result['baseline']['makespan_s']:.2f} s")
        table.add_row("speed-up over the original", f"{result['baseline']['speedup']:.1f}x")
    console.print(table)
    for error in result.get("errors", [])[:10]:
        console.print(f"[red]error:[/red] {error}")


def _cpu_row(per_event: dict[str, float]) -> str:
    """``total ms (service ms + ...)``."""
    parts = " + ".join(f"{name} {ms:.2f}" for name, ms in per_event.items() if name != "total")
    return f"{per_event['total']:.2f} ms ({parts})"


def print_capacity(capacity: dict[str, Any]) -> None:
    targets = capacity["targets"]
    table = Table(
        title=f"capacity: makespan ≤ {targets['max_ratio_to_ideal']} x ideal and live-event "
        f"p99 ≤ {targets['max_live_p99_ms']:.0f} ms"
    )
    for column in ("N", "makespan / ideal", "live p99", "met"):
        table.add_column(column, justify="right")
    for step in capacity["steps"]:
        table.add_row(
            str(step["n"]),
            f"{step['ratio_to_ideal']:.3f}",
            f"{step['live_p99_ms']:.0f} ms",
            "yes" if step["met"] else f"no{' (errors)' if step['errors'] else ''}",
        )
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(f"capacity: N = {capacity['capacity']}")
