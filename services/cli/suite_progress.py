"""How the CLI shows a suite while it runs.

On a terminal: a live table, one line per scenario (runs ended of runs, a mark per run: ✓ pass,
✗ fail, ? unjudged, a spinner while it runs or waits for its verdict, · not started, - cancelled).
Elsewhere (CI logs, pipes): one plain line per event worth telling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from contracts.suites import (
    MemberState,
    SuiteCancelledEvent,
    SuiteCancellingEvent,
    SuiteCompletedEvent,
    SuiteEvent,
    SuiteProgressEvent,
    SuiteQueuedEvent,
    SuiteState,
)
from services.cli.reports.model import SuiteReport

__all__ = ["SuiteProgress", "mark_of", "print_summary"]

_MARKS = {"pass": ("✓", "green"), "fail": ("✗", "red"), "unjudged": ("?", "yellow")}


def mark_of(member: MemberState) -> RenderableType:
    """One run at a glance."""
    if member.verdict is not None:
        symbol, style = _MARKS[member.verdict]
        return Text(symbol, style=style)
    if member.status == "cancelled":
        return Text("-", style="dim")
    if member.status == "waiting":
        return Text("·", style="dim")
    return Spinner("dots", style="cyan")  # running, or ended and waiting for its verdict


class SuiteProgress:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._state: SuiteState | None = None

    @contextmanager
    def live(self) -> Iterator[None]:
        """The live table while inside (a terminal only); it stays on screen afterwards."""
        if not self._console.is_terminal:
            yield
            return
        with Live(
            Text("waiting for the suite…"),
            console=self._console,
            refresh_per_second=8,
            get_renderable=self._render,
        ) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def show(self, state: SuiteState, event: SuiteEvent) -> None:
        self._state = state
        if self._live is not None:
            self._live.refresh()
            return
        line = self._line(state, event)
        if line:
            self._console.print(line, soft_wrap=True)

    def _render(self) -> RenderableType:
        state = self._state
        if state is None:
            return Text("waiting for the suite…")
        table = Table(box=None, show_header=False, padding=(0, 1))
        for scenario in state.scenarios():
            ended = sum(run.ended for run in scenario.runs)
            marks = Table.grid(padding=(0, 1))
            marks.add_row(*(mark_of(run) for run in scenario.runs))
            table.add_row(
                _scenario_mark(scenario.passed),
                Text(scenario.name, style="bold"),
                Text(f"{ended}/{len(scenario.runs)}", style="dim"),
                marks,
            )
        counts = state.counts()
        footer = Text(
            f"{state.status} · {counts.completed + counts.failed + counts.cancelled}/"
            f"{counts.members} ended · {counts.running} running · {counts.waiting} waiting · "
            f"{counts.passed} passed",
            style="dim",
        )
        grid = Table.grid()
        grid.add_row(table)
        grid.add_row(footer)
        return grid

    @staticmethod
    def _line(state: SuiteState, event: SuiteEvent) -> str | None:
        match event:
            case SuiteQueuedEvent():
                return (
                    f"[bold]{escape(event.name)}[/bold]: "
                    f"{len(event.members)} runs of {len(state.scenarios())} scenarios "
                    f"(at most {event.concurrency} at once)"
                )
            case SuiteProgressEvent():
                member = state.members[event.index]
                counts = event.counts
                done = counts.completed + counts.failed + counts.cancelled
                outcome = event.verdict if event.verdict is not None else event.status
                return (
                    f"[{done}/{counts.members}] {escape(member.member.scenario)} "
                    f"#{member.member.repeat_index}: {outcome}"
                )
            case SuiteCancellingEvent(reason="budget_exceeded"):
                return "[yellow]budget spent[/yellow]: running members stop before their next call"
            case SuiteCancellingEvent():
                return "[yellow]cancelling[/yellow]: running members are being cancelled"
            case SuiteCompletedEvent() | SuiteCancelledEvent():
                return (
                    f"suite {event.type}: pass rate {event.pass_rate * 100:.1f}% "
                    f"({event.counts.passed}/{event.counts.members}), "
                    f"pass^k {event.pass_hat_k * 100:.1f}%"
                )
            case _:
                return None


def _scenario_mark(passed: bool | None) -> Text:
    if passed is True:
        return Text("✓", style="green")
    if passed is False:
        return Text("✗", style="red")
    return Text("…", style="dim")


def print_summary(console: Console, report: SuiteReport) -> None:
    """The verdicts once the suite ended: a line per scenario, why each run failed, the totals."""
    for scenario in report.scenarios:
        passed = sum(run.passed for run in scenario.runs)
        console.print(
            _scenario_mark(scenario.passed),
            f"[bold]{escape(scenario.name)}[/bold] {passed}/{len(scenario.runs)} passed",
            soft_wrap=True,
        )
        for run in scenario.runs:
            if run.passed:
                continue
            for problem in run.problems:
                console.print(
                    f"    #{run.repeat_index} {run.outcome}: {escape(problem)}", soft_wrap=True
                )
    cost = "not priced" if report.spent_usd is None else f"${report.spent_usd:.4f}"
    duration = "" if report.duration_ms is None else f", {report.duration_ms / 1000:.1f} s"
    console.print(
        f"pass rate {report.pass_rate * 100:.1f}% ({report.counts.passed}/{report.counts.members}),"
        f" pass^k {report.pass_hat_k * 100:.1f}%{duration}, {report.tokens.total} tokens, "
        f"cost {cost}",
        soft_wrap=True,
    )
    if any(run.unjudged_criteria for run in report.runs):
        console.print(
            "[yellow]some criteria were not judged (no judge LLM): they do not count as "
            "passed[/yellow]"
        )
