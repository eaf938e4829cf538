"""A small run of the benchmark, for correctness only (its timings are for `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.processes import REPO

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_a_small_benchmark_run_delivers_every_event_of_every_transcript(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--n",
            "6",
            "--turns",
            "2",
            "--latency",
            "0.05",
            "--orchestrators",
            "2",
            "--baseline",
            "--json",
            str(out),
            "--logs",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    ours = result["ours"]
    assert result["errors"] == []
    assert ours["complete"] == 6
    assert ours["events"] == 6 * (1 + 1 + 2 * 2 + 1)  # queued, started, 4 turns, completed
    assert len(ours["sample_timeline"]) == 7
    kinds = {"queued", "started", "turn (user)", "turn (bot)", "completed"}
    assert set(ours["sse_delay_by_kind"]) == set(ours["topic_delay_by_kind"]) == kinds
    assert {"fakes", "orchestrator-1", "orchestrator-2", "gateway"} <= set(result["processes"])
    assert result["baseline"]["makespan_s"] > 0
    assert "makespan / ideal" in run.stdout


@pytest.mark.timeout(120)
def test_the_client_cost_benchmark_measures_every_client() -> None:
    """HTTP calls and AMQP events, on loopback fakes and the real broker."""
    run = subprocess.run(
        [sys.executable, "-m", "bench.clients", "--n", "5", "--rounds", "1", "--latency", "0.01"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if "ms CPU per call" in line]
    assert [line.split("  ")[0] for line in lines] == [
        "bot webhook, orchestrator client",
        "LLM, orchestrator client",
        "bot webhook, bare aiohttp",
    ]
    per_event = [line for line in run.stdout.splitlines() if "ms CPU per event" in line]
    assert [line.split("  ")[0] for line in per_event] == [
        "event publish, orchestrator sink",
        "event consume + parse, relay",
        "broker, per event (log + 1 queue)",
    ]
