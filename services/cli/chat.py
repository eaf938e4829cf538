"""``convsim chat``: a conversation a person steers from the terminal.

Each line read is a message to the bot; its reply is printed when it comes. ``/suggest`` shows
what the simulated user would say next: an empty line then sends it as is, any other line is
sent instead. ``/quit``, end of input or Ctrl-C closes the conversation (``closed``); a second
Ctrl-C while it closes stops waiting for its end (exit 130; the close was sent).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
from httpx_sse import EventSource
from rich.console import Console
from rich.markup import escape

from services.cli.gateway import event_stream, fail, request
from services.cli.interrupts import EXIT_INTERRUPTED, CtrlC
from services.cli.render import TurnPrinter

__all__ = ["HELP", "Chat"]

HELP = "Type a message, /suggest for the simulated user's idea, /quit to end."
EXIT_BY_STATUS = {"completed": 0, "failed": 1, "cancelled": 2}
ENDED = frozenset(EXIT_BY_STATUS)


class Chat:
    """One open conversation: send lines, ask for suggestions, close; prints what happens."""

    def __init__(
        self, client: httpx.Client, conversation_id: str, console: Console, ctrl_c: CtrlC
    ) -> None:
        self._client = client
        self._id = conversation_id
        self._console = console
        self._ctrl_c = ctrl_c
        self._printer = TurnPrinter(console)
        self._last_seq = 0
        self._ended: str | None = None
        self._end_shown = False

    def run(self) -> int:
        """Read lines until /quit, end of input or Ctrl-C (or the conversation ends by itself);
        the exit code of how it ended."""
        self._console.print(f"[dim]conversation {self._id}. {HELP}[/dim]")
        suggestion: str | None = None
        try:
            while self._ended is None:
                line = self._read_line("suggestion" if suggestion else "you")
                if line is None or line == "/quit":
                    break
                if line == "/suggest":
                    suggestion = self._suggest()
                    continue
                if not line:
                    if suggestion is None:
                        continue
                    line = suggestion
                suggestion = None
                self._send(line)
        except KeyboardInterrupt:
            self._console.print("\n[dim]closing (Ctrl-C again: stop waiting for the end)[/dim]")
        try:
            return self._close()
        except KeyboardInterrupt:
            self._console.print(f"[yellow]stopped waiting for conversation {self._id}[/yellow]")
            return EXIT_INTERRUPTED

    def _read_line(self, prompt: str) -> str | None:
        """The next line without its newline; None at end of input. A prompt on a terminal."""
        with self._ctrl_c.interruptible():
            if sys.stdin.isatty():
                try:
                    return self._console.input(f"[bold cyan]{prompt}>[/bold cyan] ").strip()
                except EOFError:
                    return None
            line = sys.stdin.readline()
        return line.strip() if line else None

    def _send(self, content: str) -> None:
        path = f"/v1/conversations/{self._id}/messages"
        with (
            event_stream(
                self._client, "POST", path, self._ctrl_c, json={"content": content}
            ) as source,
            self._printer.waiting(),
        ):
            response = source.response
            if response.status_code != 200:
                response.read()
                self._refused(response)
                return
            self._show_events(source)

    def _refused(self, response: httpx.Response) -> None:
        """A 409: the previous message is unanswered, or the conversation has ended."""
        if response.status_code != 409:
            raise fail(self._console, response)
        self._console.print(f"[yellow]409[/yellow] {escape(response.json()['detail'])}")
        state = request(self._client, "GET", f"/v1/conversations/{self._id}")
        if state.status_code == 200 and state.json()["status"] in ENDED:
            self._ended = state.json()["status"]

    def _suggest(self) -> str | None:
        response = request(self._client, "POST", f"/v1/conversations/{self._id}/suggestions")
        if response.status_code != 200:
            fail(self._console, response)  # said, and the person may go on
            return None
        content: str = response.json()["content"]
        self._console.print(f"[bold yellow]Suggestion[/bold yellow]: {escape(content)}")
        self._console.print("[dim](empty line: send it; or type your own message)[/dim]")
        return content

    def _close(self) -> int:
        """DELETE the conversation (unless it ended), then print its events to the end."""
        if self._ended is None:
            response = request(self._client, "DELETE", f"/v1/conversations/{self._id}")
            if response.status_code not in (202, 409):  # 409: it ended meanwhile
                raise fail(self._console, response)
        return self._follow_to_end()

    def _follow_to_end(self) -> int:
        if self._end_shown:
            return EXIT_BY_STATUS[self._ended or ""]
        headers = {"Last-Event-ID": str(self._last_seq)}
        path = f"/v1/simulations/{self._id}/events"
        with event_stream(self._client, "GET", path, self._ctrl_c, headers=headers) as source:
            if source.response.status_code != 200:
                source.response.read()
                raise fail(self._console, source.response)
            self._show_events(source)
        return EXIT_BY_STATUS.get(self._ended or "", 3)

    def _show_events(self, source: EventSource) -> None:
        """Every event of the stream, until it ends."""
        for sse in source.iter_sse():
            if sse.data:
                self._show(json.loads(sse.data))

    def _show(self, event: dict[str, Any]) -> None:
        self._last_seq = max(self._last_seq, event["seq"])
        self._printer.show(event)
        if event["type"] in ENDED:
            self._ended = event["type"]
            self._end_shown = True
