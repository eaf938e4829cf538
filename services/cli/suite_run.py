"""``convsim suite run`` / ``watch``: follow a suite's events live, then write its reports and
turn its outcome into an exit code.

Ctrl-C while running (``run``) cancels the suite (``DELETE /v1/suites/{id}``), waits a bounded
time for it to report ``cancelled``, writes the reports of what ran, and exits 130.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
import typer
from rich.console import Console

from contracts.suites import SuiteQueuedEvent, SuiteState, parse_suite_event
from services.cli.gateway import event_stream, fail, request
from services.cli.interrupts import EXIT_INTERRUPTED, CtrlC
from services.cli.reports import ReportPaths, write_reports
from services.cli.reports.fetch import fetch_report
from services.cli.reports.model import SuiteReport
from services.cli.suite_progress import SuiteProgress, print_summary

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_PASSED",
    "AttendOptions",
    "attend",
    "exit_code",
    "follow",
]

EXIT_PASSED = 0
EXIT_FAILED = 1
MAX_RECONNECTS = 5
_POLL_S = 0.25
_ENDED = ("completed", "cancelled")


@dataclass(frozen=True)
class AttendOptions:
    reports: ReportPaths
    fail_under: float | None = None
    cancel_on_interrupt: bool = True
    """``run`` cancels its suite on Ctrl-C; ``watch`` only lets go of it."""
    cancel_timeout_s: float = 30.0


def exit_code(report: SuiteReport, fail_under: float | None) -> int:
    """0 when every scenario passed (or the pass rate reaches ``fail_under``), else 1."""
    if report.all_passed:
        return EXIT_PASSED
    if fail_under is not None and report.pass_rate >= fail_under:
        return EXIT_PASSED
    return EXIT_FAILED


def attend(
    client: httpx.Client, suite_id: str, options: AttendOptions, console: Console, ctrl_c: CtrlC
) -> int:
    """Show the suite live until it ends, write the reports, print the summary: the exit code."""
    progress = SuiteProgress(console)
    try:
        ctrl_c.check()  # pressed while the suite was being created: it exists, cancel it
        with progress.live():
            follow(client, suite_id, progress, console, ctrl_c)
    except KeyboardInterrupt:
        return _interrupted(client, suite_id, options, console, ctrl_c)
    try:
        report = fetch_report(client, suite_id)
        ctrl_c.check()
    except KeyboardInterrupt:
        console.print(f"[yellow]suite {suite_id} ended; interrupted, no reports written[/yellow]")
        return EXIT_INTERRUPTED
    _conclude(report, options, console)
    return exit_code(report, options.fail_under)


def follow(
    client: httpx.Client, suite_id: str, progress: SuiteProgress, console: Console, ctrl_c: CtrlC
) -> SuiteState:
    """Fold the suite's events as they come (reconnecting after the last seen) until it ends."""
    state: SuiteState | None = None
    failures = 0
    while True:
        headers = {"Last-Event-ID": str(state.last_seq)} if state is not None else {}
        try:
            path = f"/v1/suites/{suite_id}/events"
            with event_stream(client, "GET", path, ctrl_c, headers=headers) as source:
                if source.response.status_code != 200:
                    source.response.read()
                    raise fail(Console(stderr=True), source.response)
                for sse in source.iter_sse():
                    if not sse.data:
                        continue  # a keep-alive
                    event = parse_suite_event(sse.data)
                    if state is None:
                        if not isinstance(event, SuiteQueuedEvent):
                            continue
                        state = SuiteState.start(event)
                    elif not state.add(event):
                        continue  # already seen
                    failures = 0
                    progress.show(state, event)
                    if state.is_terminal:
                        return state
        except httpx.TransportError:
            pass
        failures += 1
        if failures > MAX_RECONNECTS:
            console.print(f"[red]lost the suite's event stream at {client.base_url}[/red]")
            raise typer.Exit(3)
        with ctrl_c.interruptible():
            time.sleep(min(failures, 5))  # back off before reconnecting; the stream resumes


def _interrupted(
    client: httpx.Client, suite_id: str, options: AttendOptions, console: Console, ctrl_c: CtrlC
) -> int:
    try:
        if options.cancel_on_interrupt:
            console.print(f"[yellow]interrupted: cancelling suite {suite_id}[/yellow]")
            response = request(client, "DELETE", f"/v1/suites/{suite_id}")
            if response.status_code not in (200, 202):
                console.print(f"[red]cancel refused: {response.status_code}[/red] {response.text}")
            elif not _wait_until_ended(client, suite_id, options.cancel_timeout_s, ctrl_c):
                console.print(
                    f"[yellow]suite {suite_id} did not report cancelled within "
                    f"{options.cancel_timeout_s:g} s[/yellow]"
                )
        else:
            console.print(f"[yellow]stopped watching suite {suite_id} (it goes on)[/yellow]")
        if options.reports.any:
            report = fetch_report(client, suite_id)
            ctrl_c.check()
            _conclude(report, options, console)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: leave now
    except typer.Exit:
        pass  # the gateway could not answer: the reports are left out, the exit stays 130
    return EXIT_INTERRUPTED


def _wait_until_ended(client: httpx.Client, suite_id: str, timeout_s: float, ctrl_c: CtrlC) -> bool:
    """Poll the suite until it is cancelled (or completed), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = request(client, "GET", f"/v1/suites/{suite_id}")
        if response.status_code == 200:
            try:
                if response.json().get("status") in _ENDED:
                    return True
            except json.JSONDecodeError:
                pass
        with ctrl_c.interruptible():
            time.sleep(_POLL_S)
    return False


def _conclude(report: SuiteReport, options: AttendOptions, console: Console) -> None:
    print_summary(console, report)
    for path in write_reports(report, options.reports):
        console.print(f"[dim]wrote {path}[/dim]")
