"""The processes a benchmark run starts, and what they cost (CPU seconds, peak RSS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["DRIVING", "Process", "Usage", "free_port", "pid_usage", "rabbitmq_pid"]

REPO = Path(__file__).resolve().parents[1]
DRIVING = "driving"
"""A file the bench creates in its log directory when every service is ready and the driver
starts (bench.profile attaches its profilers then)."""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    peak_rss_mb: float


def pid_usage(pid: int) -> Usage:
    """CPU seconds so far and peak resident memory of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return Usage(cpu_s=cpu_s, peak_rss_mb=peak_kb / 1024)


def rabbitmq_pid(amqp_port: int = 5672) -> int | None:
    """The Erlang VM of the broker listening on ``amqp_port`` on this machine (other brokers,
    a test's cluster nodes, may run beside it), else the first one found."""
    if (pid := listener_pid(amqp_port)) is not None:
        return pid
    found = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True)
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


def listener_pid(port: int) -> int | None:
    """The process holding the TCP socket that listens on ``port`` (from /proc, Linux)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            columns = row.split()
            if columns[3] == "0A" and int(columns[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(columns[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not wanted or not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except OSError:
            continue
    return None


class Process:
    """``python -m <module>`` with its output in ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_http(self, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer at {url}")

    def wait_log(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log_path.read_text(errors="replace"):
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not log {text!r}")
            time.sleep(0.1)

    def usage(self) -> Usage:
        return pid_usage(self.popen.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
