"""How the CLI shows a simulation: one line per turn (speaker, text, latency), a spinner while
waiting for the next, then the outcome."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

__all__ = ["TurnPrinter"]

SPEAKERS = {"user": "[bold cyan]User[/bold cyan]", "bot": "[bold magenta]Bot[/bold magenta]"}


class TurnPrinter:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._status: Status | None = None

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """A spinner between events (only on a terminal)."""
        if not self._console.is_terminal:
            yield
            return
        with self._console.status("waiting for the next turn…") as status:
            self._status = status
            yield
        self._status = None

    def show(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "turn":
            latency = f" [dim]({event['latency_ms']} ms)[/dim]" if event["latency_ms"] else ""
            speaker = SPEAKERS.get(event["role"], event["role"])
            # A line is text, not rich markup: "[/b]" typed by a person must print as is.
            self._console.print(f"{speaker}: {escape(event['content'])}{latency}", soft_wrap=True)
        elif kind == "retrying":
            self._console.print(
                f"[yellow]retrying {event['step']}[/yellow] "
                f"(attempt {event['failed_attempt']} of {event['max_attempts']} failed: "
                f"{event['error']['message']})"
            )
        elif kind == "waiting":
            self._console.print(
                f"[yellow]waiting[/yellow] for {escape(event['target'])} before {event['step']} "
                f"({event['reason']})"
            )
        elif kind == "completed":
            self._console.print(
                f"[green]completed[/green]: {event['turn_count']} bot replies "
                f"in {event['duration_ms'] / 1000:.1f} s ({event['stop_reason']})"
            )
        elif kind == "failed":
            error = event["error"]
            self._console.print(f"[red]failed[/red] ({error['code']}): {error['message']}")
        elif kind == "cancelled":
            self._console.print("[yellow]cancelled[/yellow]")

    def summary(self, state: dict[str, Any]) -> None:
        self._console.print(f"simulation {state['simulation_id']}: [bold]{state['status']}[/bold]")
        for turn in state["turns"]:
            self.show(turn)
        if state.get("error"):
            self._console.print(f"[red]{state['error']['code']}[/red]: {state['error']['message']}")
