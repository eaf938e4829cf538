"""``python -m bench.profile [bench options]``: one bench run with py-spy sampling the gateway
and the first orchestrator (and the judge with ``--judge``) from the moment the driver starts
(every service is ready; attaching takes a few tens of ms) to the end of the run; writes each
one's raw stacks (flamegraph input) and prints the functions with the most own time (the frame
on top of the stack).

``python -m bench.profile --n 100 --turns 3 --latency 0.5 --out /tmp/profile``
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import DRIVING, REPO

__all__ = ["own_time"]

SERVICES = {"gateway": "services.gateway", "orchestrator-1": "services.orchestrator"}
IDLE_LEAVES = ("Condition.wait (threading.py", "_worker (concurrent/futures/thread.py")
"""Leaves of threads waiting for work (thread pools): py-spy counts them, they use no CPU."""


def own_time(raw: str) -> tuple[int, list[tuple[str, int]]]:
    """Samples, and (function (file), own samples) most first, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        if not count.isdigit() or "WorkerThread.run" in stack or leaf.startswith(IDLE_LEAVES):
            continue
        total += int(count)
        own[_short(leaf)] += int(count)
    return total, own.most_common()


def _short(frame: str) -> str:
    found = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not found:
        return frame
    function, path = found.groups()
    path = re.sub(r".*site-packages/|.*/lib/python3\.\d+/", "", path)
    return f"{function} ({path.removeprefix(str(REPO) + '/')})"


def _child(parent: int, module: str) -> int | None:
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", module], capture_output=True)
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="raw stacks and logs here")
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    parser.add_argument("--top", type=int, default=25)
    args, bench_args = parser.parse_known_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="convsim-profile-"))
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    services = dict(SERVICES) | ({"judge": "services.judge"} if "--judge" in bench_args else {})
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", *bench_args, "--logs", str(logs)], cwd=REPO
    )
    while bench.poll() is None and not (logs / DRIVING).exists():  # every service is ready
        time.sleep(0.02)
    pids = {
        name: pid
        for name, module in services.items()
        if (pid := _child(bench.pid, module)) is not None
    }
    py_spy = str(Path(sys.executable).parent / "py-spy")
    record = [py_spy, "record", "-r", str(args.rate), "--format", "raw"]
    spies = [
        subprocess.Popen(
            [*record, "-p", str(pid), "-o", str(out / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    code = bench.wait()
    for spy in spies:
        spy.wait(timeout=60)
    for name in pids:
        raw = out / f"{name}.txt"
        if not raw.exists():
            print(f"{name}: no profile (is py-spy installed? make install)")
            continue
        total, functions = own_time(raw.read_text())
        print(f"\n{name}: {total} samples, own time ({raw})")
        for function, samples in functions[: args.top]:
            print(f"  {100 * samples / max(total, 1):5.1f}%  {function}")
    return code


if __name__ == "__main__":
    sys.exit(main())
