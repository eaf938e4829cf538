"""A small run of the benchmark, for correctness only (its timings are for `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.broker_profile import kind_of, read_broker, work_by_process
from bench.floor.orchestrator import READY_LINE
from tests.integration.processes import REPO
from tests.integration.rabbitmqctl import NODE, can_control_broker

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_a_small_benchmark_run_delivers_every_event_of_every_transcript(tmp_path: Path) -> None:
    run, result = _bench(
        tmp_path,
        *("--n", "6", "--turns", "2", "--latency", "0.05", "--orchestrators", "2", "--baseline"),
        *("--gateways", "2"),
    )
    ours = result["ours"]
    assert result["errors"] == []
    assert ours["complete"] == 6
    assert ours["events"] == 6 * (1 + 1 + 2 * 2 + 1)  # queued, started, 4 turns, completed
    assert len(ours["sample_timeline"]) == 7
    kinds = {"queued", "started", "turn (user)", "turn (bot)", "completed"}
    assert set(ours["sse_delay_by_kind"]) == set(ours["topic_delay_by_kind"]) == kinds
    assert {"fakes", "orchestrator-1", "orchestrator-2", "gateway-1", "gateway-2"} <= set(
        result["processes"]
    )
    assert set(ours["cpu_ms_per_event"]) >= {"gateway-1", "gateway-2"}
    assert result["baseline"]["makespan_s"] > 0
    assert "makespan / ideal" in run.stdout
    assert ours["published_events"] == ours["events"]
    assert ours["cpu_ms_per_event"]["total"] > 0
    assert set(ours["driver_loop_lag"]) == {"p50_ms", "p99_ms", "max_ms"}
    assert "the driver's own event-loop lag" in run.stdout


def _module(module: str, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m module args``, which must exit 0."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _module_json(
    tmp_path: Path, module: str, *args: str, timeout_s: float = 240
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``python -m module args --json FILE``, which must exit 0, and the JSON it wrote."""
    out = tmp_path / f"{module}.json"
    run = _module(module, *args, "--json", str(out), timeout_s=timeout_s)
    return run, json.loads(out.read_text())


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    return _module_json(tmp_path, "bench", *args, "--logs", str(tmp_path))


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_a_typical_client_follows_llm_bot_simulations_that_wait_on_permits_and_are_judged(
    tmp_path: Path,
) -> None:
    """Every mode at once: a typical client (POST /v1/simulations, then its events), an
    openai_chat bot capped at 2 calls at once (permits), and the judge with one criterion each."""
    n, turns = 5, 2
    run, result = _bench(
        tmp_path,
        *("--n", str(n), "--turns", str(turns), "--latency", "0.2"),
        *("--client", "typical", "--bot", "llm", "--judge", "--limits", "--cap", "2"),
    )
    ours = _judged_after_waits(result, n)
    assert ours["verdict_delay"]["p50_ms"] > 0
    assert ours["events"] >= n * (1 + 1 + 2 * turns)  # queued, started, turns; waiting too
    assert ours["live_events"] + ours["replayed_events"] == ours["events"]
    assert ours["live_events"] > 0
    assert "judged" in ours["topic_delay_by_kind"]
    assert (
        result["workload"] | {"client": "typical", "bot": "llm", "judge": True}
        == (result["workload"])
    )
    assert "typical client" in run.stdout
    assert "simulations judged" in run.stdout


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_the_capacity_search_reports_each_step(tmp_path: Path) -> None:
    """With the typical client on httpx's aiohttp transport (it reads the same streams)."""
    run, capacity = _bench(
        tmp_path,
        *("--turns", "1", "--latency", "0.2", "--capacity", "--capacity-steps", "2,3"),
        *("--client", "typical-aiohttp"),
    )
    steps = capacity["steps"]
    assert steps[0]["result"]["workload"]["client"] == "typical-aiohttp"
    assert [step["n"] for step in steps] == [2, 3][: len(steps)]
    assert all(step["errors"] == [] for step in steps)
    assert capacity["capacity"] in {0, 2, 3}
    assert steps[0]["result"]["ours"]["complete"] == 2
    assert "capacity: N =" in run.stdout


@pytest.mark.timeout(120)
def test_the_client_cost_benchmark_measures_every_client() -> None:
    """HTTP calls and AMQP events, on loopback fakes and the real broker."""
    run = _module(
        "bench.clients", *("--n", "5", "--rounds", "1", "--latency", "0.01"), timeout_s=100
    )
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


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(180)
def test_the_accept_floor_measures_the_bare_parts_and_the_gateway(tmp_path: Path) -> None:
    run, results = _module_json(
        tmp_path,
        "bench.accept_floor",
        *("--n", "4", "--rounds", "1", "--kinds", "bare,stream,publish,gateway"),
        timeout_s=150,
    )
    assert [result["kind"] for result in results] == ["bare", "stream", "publish", "gateway"]
    for result in results:
        (row,) = result["rounds"]
        assert row["cpu_ms"] >= 0, result  # /proc counts in 10 ms ticks: 4 accepts may be 0
        assert 0 < row["answered"]["p50_ms"] <= row["answered"]["max_ms"], result
    assert "ms server CPU per accept" in run.stdout


@pytest.mark.usefixtures("local_broker")
def test_the_broker_profile_reads_every_process_of_the_local_broker() -> None:
    if not can_control_broker():
        pytest.skip("rabbitmqctl cannot reach the local broker")
    before = read_broker(NODE)
    after = read_broker(NODE)
    kinds = {kind_of(process.initial_call) for process in after}
    assert len(after) > 100
    assert "quorum queues' write-ahead log" in kinds, kinds
    work = work_by_process([before, after])
    assert sum(done for _, done in work.values()) > 0  # reading the VM is work itself


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(120)
def test_the_broker_floor_sends_w2s_traffic_in_each_step(tmp_path: Path) -> None:
    run, results = _module_json(
        tmp_path, "bench.broker_floor", *("--n", "5", "--every", "0.01"), timeout_s=100
    )
    assert [result["step"] for result in results] == [1, 2, 3]
    assert all(result["events"] == 5 * 13 for result in results)
    assert all(result["broker_ms_per_event"] >= 0 for result in results)
    assert run.stdout.count("ms broker CPU per event") == 3


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_the_floor_stack_runs_the_same_workload_to_whole_transcripts(tmp_path: Path) -> None:
    """``--stack floor``: bench.floor's gateway and orchestrators instead of convsim's, under
    the same driver, topic subscriber and checks (every transcript whole and in order)."""
    run, result = _bench(
        tmp_path,
        *("--stack", "floor", "--n", "6", "--turns", "2", "--latency", "0.05"),
        *("--orchestrators", "2"),
    )
    ours = result["ours"]
    assert result["workload"]["stack"] == "floor"
    assert result["errors"] == []
    assert ours["complete"] == 6
    assert ours["events"] == ours["published_events"] == 6 * (1 + 1 + 2 * 2 + 1)
    kinds = {"queued", "started", "turn (user)", "turn (bot)", "completed"}
    assert set(ours["sse_delay_by_kind"]) == kinds
    assert {"orchestrator-1", "orchestrator-2", "gateway"} <= set(ours["cpu_ms_per_event"])
    for name in ("orchestrator-1", "orchestrator-2"):  # the floor's, not convsim's
        assert READY_LINE in (tmp_path / f"{name}.log").read_text()
    assert "makespan / ideal" in run.stdout
    assert "the floor stack (bench/floor) bench: N=6" in run.stdout


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_the_floor_stack_runs_every_mode_to_whole_judged_transcripts(tmp_path: Path) -> None:
    """``--stack floor --bot llm --judge --limits``: the floor's orchestrator calls an
    openai_chat bot holding one of 2 permits per call (waits announced), and the floor's judge
    grades every simulation; a typical client follows them (the floor gateway's
    ``POST /v1/simulations`` and ``GET .../events`` from the start)."""
    n, turns = 5, 2
    run, result = _bench(
        tmp_path,
        *("--stack", "floor", "--n", str(n), "--turns", str(turns), "--latency", "0.2"),
        *("--bot", "llm", "--judge", "--limits", "--cap", "2", "--idle-s", "0.5"),
        *("--client", "typical-aiohttp"),
    )
    ours = _judged_after_waits(result, n)
    assert ours["live_events"] + ours["replayed_events"] == ours["events"]
    assert ours["live_events"] > 0
    assert "floor judge" in (tmp_path / "judge.log").read_text()  # the floor's, not convsim's
    assert set(ours["idle_cpu_ms_per_event"]) == set(ours["cpu_ms_per_event"])
    assert "rabbitmq" in result["idle_cpu_s_per_s"]
    assert "of which at rest" in run.stdout
    assert "simulations judged" in run.stdout


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
def test_convsims_orchestrators_run_behind_the_floor_gateway(tmp_path: Path) -> None:
    """``--stack floor-gateway``: convsim's orchestrators, and the floor's gateway joined to
    the topology they declared; every transcript whole and in order, read from the floor's
    relay (convsim's message ids carry the seq after the simulation id)."""
    run, result = _bench(
        tmp_path,
        *("--stack", "floor-gateway", "--n", "6", "--turns", "2", "--latency", "0.05"),
    )
    ours = result["ours"]
    assert result["workload"]["stack"] == "floor-gateway"
    assert result["errors"] == []
    assert ours["complete"] == 6
    assert ours["events"] == ours["published_events"] == 6 * (1 + 1 + 2 * 2 + 1)
    orchestrator_log = (tmp_path / "orchestrator-1.log").read_text()
    assert READY_LINE not in orchestrator_log  # convsim's orchestrator, not the floor's
    assert "app started successfully" in orchestrator_log
    assert "convsim's orchestrators behind the floor gateway (bench/floor) bench: N=6" in run.stdout


def _judged_after_waits(result: dict[str, Any], n: int) -> dict[str, Any]:
    """Checks of a run of n simulations with every mode on (a cap of 2, 0.2 s calls): whole,
    judged, with waits announced; its ``ours``."""
    ours: dict[str, Any] = result["ours"]
    assert result["errors"] == []
    assert ours["complete"] == n
    assert ours["verdicts"] == n
    assert "waiting" in ours["topic_delay_by_kind"]  # n first calls, 2 at once
    assert ours["published_events"] == ours["events"] + n  # and one verdict each
    assert {"judge", "gateway", "orchestrator-1"} <= set(ours["cpu_ms_per_event"])
    return ours
