"""What one simulation's stream gave a driver: the events, which of them count as live, and
whether the transcript is whole and in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.fakes import bot_reply, learner_reply
from bench.modes import OPENING

__all__ = ["SimOutcome", "event_time", "expected_lines", "kind_of"]


def event_time(event: dict[str, Any]) -> float:
    """When the event's publisher created it (its ``timestamp``), in epoch seconds."""
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def kind_of(event: dict[str, Any]) -> str:
    """The event's type; ``turn`` events split by whose turn it was."""
    if event["type"] != "turn":
        return str(event["type"])
    return f"turn ({event['role']})"


def expected_lines(turns: int) -> list[str]:
    """The transcript the fakes produce, line by line (the same in every mode)."""
    lines, message = [f"User: {OPENING}"], OPENING
    for turn in range(1, turns + 1):
        lines.append(f"Bot: {bot_reply(message)}")
        if turn < turns:
            message = learner_reply(turn)
            lines.append(f"User: {message}")
    return lines


@dataclass
class SimOutcome:
    """One simulation as its driver saw it. ``live`` holds, for each event that counts, its
    kind and delay (arrival - timestamp): every event for the bench's driver, only those
    published after the stream opened for a typical client."""

    events: list[dict[str, Any]] = field(default_factory=list)
    live: list[tuple[str, float]] = field(default_factory=list)
    problem: str | None = None

    @property
    def simulation_id(self) -> str | None:
        return str(self.events[0]["simulation_id"]) if self.events else None

    def check(self, expected: list[str]) -> None:
        """Sets ``problem`` when the events are not a whole, ordered, expected transcript."""
        self.problem = self.problem or _problem_with(self.events, expected)

    def lifecycle(self) -> tuple[float, float, float]:
        """When it was queued; from there to ``started``, and to its end."""
        times = {e["type"]: event_time(e) for e in self.events}
        queued = times.get("queued", 0.0)
        started = times.get("started", queued)
        return queued, started - queued, max(times.values(), default=queued) - queued

    def ended_at(self) -> float | None:
        """The timestamp of its terminal event."""
        return event_time(self.events[-1]) if self.events else None

    def timeline(self) -> list[dict[str, Any]]:
        if not self.events:
            return []
        start = event_time(self.events[0])
        return [
            {
                "type": e["type"],
                "kind": kind_of(e),
                "at_s": round(event_time(e) - start, 3),
                "latency_ms": e.get("latency_ms"),
            }
            for e in self.events
        ]


def _problem_with(events: list[dict[str, Any]], expected: list[str]) -> str | None:
    seqs = [e["seq"] for e in events]
    if seqs != list(range(1, len(events) + 1)):
        return f"seq is not gapless: {', '.join(map(str, seqs[:20]))}"
    if not events or events[-1]["type"] != "completed":
        return f"ended with {events[-1]['type'] if events else 'nothing'}"
    turns = [e for e in events if e["type"] == "turn"]
    lines = [f"{'User' if t['role'] == 'user' else 'Bot'}: {t['content']}" for t in turns]
    if lines != expected:
        return "the transcript differs from the expected one"
    if events[-1]["transcript"].splitlines() != expected:
        return "the completed transcript differs"
    return None
