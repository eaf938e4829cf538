"""Real service processes for integration tests: started with an env, stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

__all__ = [
    "ServiceProcess",
    "default_sigint",
    "start_gateway",
    "start_judge",
    "start_orchestrator",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]


def default_sigint() -> None:
    """For ``preexec_fn``: a shell runs background jobs with SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler; give a CLI the SIGINT a terminal user's process has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll a condition about an external process, with a bound."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class ServiceProcess:
    """``python -m <module>`` with its output in a log file under the test's tmp dir."""

    def __init__(self, name: str, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def check_running(self) -> bool:
        """True while it runs; raises with its log if it exited."""
        if not self.running:
            raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
        return True

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http_ok(self, url: str, timeout_s: float = 30) -> None:
        def ok() -> bool:
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ok, timeout_s=timeout_s, what=f"{self.name} at {url}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.running:
            self.process.send_signal(sig)
            if sig == signal.SIGKILL:
                self.process.send_signal(signal.SIGCONT)  # a stopped process dies only then
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def consuming(process: ServiceProcess, what: str, timeout_s: float) -> ServiceProcess:
    """``process`` (a FastStream service) once it has started consuming; fails if it exits."""
    wait_until(
        lambda: process.check_running() and "app started successfully" in process.log_text(),
        timeout_s=timeout_s,
        what=what,
    )
    return process


def start_judge(
    name: str, env: dict[str, str], log_dir: Path, *, timeout_s: float = 30
) -> ServiceProcess:
    """``python -m services.judge`` with this env (CONVSIM_JUDGE_METRICS_PORT 0 unless given),
    once it consumes the judge queue."""
    judge = ServiceProcess(
        name, "services.judge", {"CONVSIM_JUDGE_METRICS_PORT": "0", **env}, log_dir
    )
    return consuming(judge, f"{name} to consume the judge queue", timeout_s)


def start_orchestrator(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    processes: list[ServiceProcess],
    *,
    timeout_s: float,
) -> ServiceProcess:
    """``python -m services.orchestrator`` with this env (added to ``processes`` at once, so it
    is stopped whatever happens), once it consumes the request queue."""
    process = ServiceProcess(name, "services.orchestrator", env, log_dir)
    processes.append(process)
    return consuming(process, f"{name} to consume the request queue", timeout_s)


def start_gateway(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    processes: list[ServiceProcess],
    *,
    port: int,
    timeout_s: float,
) -> tuple[ServiceProcess, str]:
    """``python -m services.gateway`` on ``port`` (added to ``processes`` at once), once its
    /readyz says 200; and its URL."""
    process = ServiceProcess(
        name, "services.gateway", {**env, "CONVSIM_GATEWAY_PORT": str(port)}, log_dir
    )
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    process.wait_http_ok(f"{url}/readyz", timeout_s=timeout_s)
    return process, url
