"""The numbers of a run: a table on the terminal and a JSON document."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["machine", "percentiles", "print_report"]


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


def print_report(result: dict[str, Any]) -> None:
    console = Console()
    workload = result["workload"]
    table = Table(
        title=f"convsim bench: N={workload['n']} T={workload['turns']} "
        f"latency={workload['latency_s']} s, {workload['orchestrators']} orchestrator(s)"
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
        ("event delay, SSE", "sse_delay"),
        ("event delay, topic", "topic_delay"),
        ("run start → queued", "accept_lag"),
        ("queued → started", "start_lag"),
        ("queued → end", "run_time"),
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
