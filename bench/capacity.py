"""``--capacity``: the largest N whose run still meets the targets (makespan ≤ 1.25 x ideal
and live-event delay p99 ≤ 250 ms), trying N in increasing steps until one fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CAPACITY_STEPS", "MAX_P99_MS", "MAX_RATIO", "meets_targets", "search_capacity"]

CAPACITY_STEPS = [300, 400, 500, 600, 800]
MAX_RATIO = 1.25
MAX_P99_MS = 250.0


def meets_targets(result: dict[str, Any]) -> bool:
    """A complete run within 1.25 x ideal whose live events arrived within 250 ms (p99)."""
    ours = result["ours"]
    return (
        not result["errors"]
        and ours["ratio_to_ideal"] <= MAX_RATIO
        and ours["sse_delay"]["p99_ms"] <= MAX_P99_MS
    )


def search_capacity(steps: list[int], run: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Runs ``run(n)`` for each step in increasing order and stops after the first that misses
    the targets. ``capacity`` is the largest N that met them (0 when the first step missed)."""
    capacity, reports = 0, []
    for n in sorted(steps):
        result = run(n)
        met = meets_targets(result)
        ours = result["ours"]
        reports.append(
            {
                "n": n,
                "ratio_to_ideal": ours["ratio_to_ideal"],
                "live_p99_ms": ours["sse_delay"]["p99_ms"],
                "met": met,
                "errors": result["errors"][:10],
                "result": result,
            }
        )
        if not met:
            break
        capacity = n
    return {
        "targets": {"max_ratio_to_ideal": MAX_RATIO, "max_live_p99_ms": MAX_P99_MS},
        "capacity": capacity,
        "steps": reports,
    }
