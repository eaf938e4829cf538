"""``python -m bench.broker_profile [bench options]``: one bench run while the local broker's
Erlang processes are read every second (their reductions: the Erlang VM's count of work
done); prints where the broker's work went, by kind of process, and its busiest processes.

A process's share is its reductions at its last reading minus those at the first (or all of
them if it started during the run), so a process that lives less than a second between two
readings is missed: channels, queues and stream writers live through the whole run. Each
reading costs the broker a little work of its own (a few ms).

Needs the right to run ``rabbitmqctl`` against the broker ``make broker`` started (root here).

``python -m bench.broker_profile --n 300``; ``python -m bench.broker_profile --module
bench.broker_floor --steps 3`` (the same traffic from minimal clients)
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.processes import REPO

__all__ = ["Reading", "kind_of", "parse_reading", "read_broker", "work_by_process"]

NODE = "rabbit@localhost"
"""The node ``scripts/broker.sh`` starts."""

_EVAL = (
    "lists:foreach(fun(P) -> case erlang:process_info(P, [reductions, registered_name]) of "
    "undefined -> ok; [{reductions, R}, {registered_name, N}] -> "
    "C = try proc_lib:translate_initial_call(P) catch _:_ -> unknown end, "
    'io:format("~w\\t~w\\t~w\\t~w~n", [P, C, N, R]) end end, erlang:processes()), ok.'
)

KINDS = {
    "rabbit_channel": "channels: routing each publish, confirms, deliveries to consumers",
    "osiris_writer": "stream writers (the event log and the other logs)",
    "osiris_replica": "stream replicas",
    "rabbit_prequeue": "classic queues (relay and subscriber queues)",
    "rabbit_amqqueue_process": "classic queues (relay and subscriber queues)",
    "ra_server_proc": "quorum queues (requests, suites, judge, permits)",
    "ra_log_wal": "quorum queues' write-ahead log",
    "ra_log_segment_writer": "quorum queues' write-ahead log",
    "rabbit_writer": "connection writers (frames out)",
    "rabbit_reader": "connection readers (frames in)",
    "rabbit_mgmt": "management statistics",
}


@dataclass(frozen=True)
class Reading:
    """One Erlang process as read once: what started it, its name, its reductions so far."""

    pid: str
    initial_call: str
    name: str
    reductions: int


def kind_of(initial_call: str) -> str:
    """The kind of broker process an initial call (``{module,function,arity}``) starts."""
    module = initial_call.strip("{}").split(",", 1)[0]
    for prefix, kind in KINDS.items():
        if module.startswith(prefix):
            return kind
    return "other"


def parse_reading(text: str) -> list[Reading]:
    """The lines ``pid TAB initial call TAB registered name TAB reductions`` of one reading."""
    readings = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[3].isdigit():
            pid, call, name, reductions = parts
            readings.append(Reading(pid, call, "" if name == "[]" else name, int(reductions)))
    return readings


def read_broker(node: str = NODE) -> list[Reading]:
    """Every process of the broker's Erlang VM, read once through ``rabbitmqctl eval``."""
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    done = subprocess.run(
        ["rabbitmqctl", "-q", "eval", _EVAL],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return parse_reading(done.stdout)


def work_by_process(readings: Iterable[list[Reading]]) -> dict[str, tuple[Reading, int]]:
    """For each process seen: its last reading and the reductions it did since the first
    reading (all of them if it was not in the first)."""
    first: dict[str, int] = {}
    last: dict[str, Reading] = {}
    for number, reading in enumerate(readings):
        for process in reading:
            if number == 0:
                first[process.pid] = process.reductions
            last[process.pid] = process
    return {pid: (process, process.reductions - first.get(pid, 0)) for pid, process in last.items()}


def _report(work: Mapping[str, tuple[Reading, int]], top: int) -> None:
    total = sum(done for _, done in work.values()) or 1
    by_kind: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for process, done in work.values():
        by_kind[kind_of(process.initial_call)] += done
        counts[kind_of(process.initial_call)] += 1
    print(f"\nbroker: {total} reductions during the run, by kind of process")
    for kind, done in by_kind.most_common():
        print(f"  {100 * done / total:5.1f}%  {kind} ({counts[kind]} processes)")
    print("busiest processes")
    busiest = sorted(work.values(), key=lambda item: item[1], reverse=True)[:top]
    for process, done in busiest:
        label = process.name or process.initial_call
        print(f"  {100 * done / total:5.1f}%  {process.pid} {label}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_profile", description=__doc__)
    parser.add_argument(
        "--module", default="bench", help="what to run (default the bench; bench.broker_floor)"
    )
    parser.add_argument("--top", type=int, default=12, help="busiest processes shown")
    args, bench_args = parser.parse_known_args()
    readings: list[list[Reading]] = [read_broker()]
    bench = subprocess.Popen([sys.executable, "-m", args.module, *bench_args], cwd=REPO)
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.wait(1.0):
            readings.append(read_broker())

    reader = threading.Thread(target=keep_reading, daemon=True)
    reader.start()
    code = bench.wait()
    stop.set()
    reader.join(timeout=60)
    _report(work_by_process(readings), top=args.top)
    return code


if __name__ == "__main__":
    sys.exit(main())
