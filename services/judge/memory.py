"""What the judge remembers of the event log it follows: per simulation, its events (as the
bytes the log holds) until it is judged, so judging it needs no read of the log.

Pure (no broker): fed one log message at a time by ``take``, asked by ``recall``. Every
simulation whose first event is seen gets an entry (the gateway's ``queued`` can reach the
log after the orchestrator's ``started``); its ``queued`` decides whether it is kept
(``wants_judgement``). Bounded by a count of simulations and a count of bytes: past either,
the oldest entries go, and a simulation no longer (or never) remembered whole is read from
the log instead (``Recall.UNKNOWN``).
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts.events import QueuedEvent, SimulationEvent, parse_event
from contracts.judgement import JudgedEvent, parse_judged
from contracts.projection import EventSequence
from services.common.event_log import LoggedSimulation, wants_judgement

__all__ = ["ENTRY_OVERHEAD_BYTES", "JudgeMemory", "Recall", "simulation_of_key"]

logger = logging.getLogger(__name__)

ENTRY_OVERHEAD_BYTES = 200
"""Counted for each entry and each message kept, besides the message's bytes: the Python
objects around them."""

JUDGED_ENDINGS = frozenset({"completed", "failed"})


class Recall(enum.Enum):
    UNKNOWN = "unknown"
    """Not remembered from its first event to its end: read it from the log."""
    NOT_WANTED = "not_wanted"
    """Its request asks for no verdict."""
    NOT_ENDED = "not_ended"
    """Remembered from its first event, but its end has not been seen (yet)."""


class _State(enum.Enum):
    UNDECIDED = "undecided"  # its queued not seen yet: events kept
    WANTED = "wanted"  # its request wants judgement: events kept
    NOT_WANTED = "not_wanted"  # tombstone
    JUDGED = "judged"  # tombstone with the verdict
    GONE = "gone"  # cancelled, or its events could not be kept: tombstone


@dataclass
class _Entry:
    state: _State = _State.UNDECIDED
    bodies: list[bytes] = field(default_factory=list)
    size: int = ENTRY_OVERHEAD_BYTES
    ended: bool = False
    judged: JudgedEvent | None = None


def simulation_of_key(routing_key: str | None) -> tuple[str, str] | None:
    """``simulation.<id>.<type>`` -> (id, type); None for anything else (markers, suites)."""
    parts = (routing_key or "").split(".")
    if len(parts) != 3 or parts[0] != "simulation" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class JudgeMemory:
    def __init__(self, *, max_simulations: int, max_bytes: int) -> None:
        self._max_simulations = max_simulations
        self._max_bytes = max_bytes
        self._live: OrderedDict[str, _Entry] = OrderedDict()
        """Undecided or wanted: events kept, oldest first."""
        self._tombs: OrderedDict[str, _Entry] = OrderedDict()
        """Judged, not wanted or gone: no events; evicted before any live entry."""
        self._bytes = 0

    @property
    def simulations(self) -> int:
        return len(self._live) + len(self._tombs)

    @property
    def size(self) -> int:
        """Bytes counted (messages kept, plus ENTRY_OVERHEAD_BYTES per entry and message)."""
        return self._bytes

    def take(self, routing_key: str | None, body: bytes) -> str | None:
        """One message of the log, in log order (a message seen twice is harmless). Returns
        the simulation's id when it ended or was judged with this message (waiters wake)."""
        key = simulation_of_key(routing_key)
        if key is None:
            return None
        simulation_id, kind = key
        if kind == "judged":
            return self._judged(simulation_id, body)
        entry = self._live.get(simulation_id)
        if entry is None:
            if simulation_id in self._tombs:
                return None  # nothing more is kept of it
            entry = self._live[simulation_id] = _Entry()
            self._bytes += entry.size
        if kind == "cancelled":
            self._forget(simulation_id, entry, _State.GONE)  # a cancelled one gets no verdict
            self._bound()
            return simulation_id
        if kind == "queued" and entry.state is _State.UNDECIDED and not self._decide(entry, body):
            self._forget(simulation_id, entry, _State.NOT_WANTED)
            self._bound()
            return None
        entry.bodies.append(body)
        added = len(body) + ENTRY_OVERHEAD_BYTES
        entry.size += added
        self._bytes += added
        if kind in JUDGED_ENDINGS:
            entry.ended = True
        self._bound()
        return simulation_id if kind in JUDGED_ENDINGS else None

    def remember_judged(self, judged: JudgedEvent) -> None:
        """This judge published ``judged`` (the follower will see it later)."""
        self._judged_event(judged.simulation_id, judged)
        self._bound()

    def forget(self, simulation_id: str) -> None:
        """The log was read for it: its events here are not needed (nor kept from now on)."""
        entry = self._live.get(simulation_id)
        if entry is not None:
            self._forget(simulation_id, entry, _State.GONE)
            self._bound()

    def recall(self, simulation_id: str) -> LoggedSimulation | Recall:
        """What the memory knows of one simulation: its events from ``queued`` to its end in
        seq order (none once it was judged: ``judged`` says so), or why it cannot tell."""
        entry = self._live.get(simulation_id) or self._tombs.get(simulation_id)
        if entry is None or entry.state is _State.GONE:
            return Recall.UNKNOWN
        if entry.state is _State.JUDGED:
            return LoggedSimulation(events=[], judged=entry.judged)
        if entry.state is _State.NOT_WANTED:
            return Recall.NOT_WANTED
        if not entry.ended:
            return Recall.NOT_ENDED
        sequence = EventSequence()
        for body in entry.bodies:
            try:
                event = parse_event(body)
            except ValidationError:
                logger.warning("skipping an invalid event of %s in the log", simulation_id)
                continue
            sequence.add(event)
        if not sequence.is_terminal or sequence.has_gap:
            # Not whole (it began before this judge followed the log) or a stale attempt's
            # end: the log read decides, as it always did.
            return Recall.UNKNOWN
        return LoggedSimulation(events=sequence.events, judged=None)

    def _decide(self, entry: _Entry, body: bytes) -> bool:
        """Its ``queued``: keep it if the request wants a verdict."""
        try:
            event: SimulationEvent = parse_event(body)
        except ValidationError:
            return True  # undecided still: the judgement reads it again
        if isinstance(event, QueuedEvent):
            if not wants_judgement(event.request):
                return False
            entry.state = _State.WANTED
        return True

    def _judged(self, simulation_id: str, body: bytes) -> str | None:
        entry = self._live.get(simulation_id) or self._tombs.get(simulation_id)
        if entry is None or entry.state in (_State.JUDGED, _State.NOT_WANTED):
            return None  # not followed from its start (the log read finds it), or a second
        try:
            judged = parse_judged(body)
        except ValidationError:
            logger.warning("skipping an invalid verdict on %s in the log", simulation_id)
            return None
        self._judged_event(simulation_id, judged)
        self._bound()
        return simulation_id

    def _judged_event(self, simulation_id: str, judged: JudgedEvent) -> None:
        tomb = self._tombs.get(simulation_id)
        if tomb is not None and tomb.state is _State.JUDGED:
            return  # the first verdict counts
        entry = self._live.get(simulation_id) or tomb
        if entry is None:
            entry = self._live[simulation_id] = _Entry()
            self._bytes += entry.size
        self._forget(simulation_id, entry, _State.JUDGED)
        entry.judged = judged

    def _forget(self, simulation_id: str, entry: _Entry, state: _State) -> None:
        """Drop its events, keep a tombstone."""
        self._bytes -= entry.size - ENTRY_OVERHEAD_BYTES
        entry.size = ENTRY_OVERHEAD_BYTES
        entry.bodies = []
        entry.state = state
        self._live.pop(simulation_id, None)
        self._tombs.pop(simulation_id, None)
        self._tombs[simulation_id] = entry

    def _bound(self) -> None:
        """Past the count, the oldest tombstones go first, then the oldest live entries; past
        the bytes, the oldest live entries lose their events (a tombstone stays, so what
        follows of them is not kept either), then tombstones go."""
        while self.simulations > self._max_simulations:
            entries = self._tombs or self._live
            _, oldest = entries.popitem(last=False)
            self._bytes -= oldest.size
        while self._bytes > self._max_bytes:
            if self._live:
                simulation_id, entry = next(iter(self._live.items()))
                self._forget(simulation_id, entry, _State.GONE)
            elif self._tombs:
                _, oldest = self._tombs.popitem(last=False)
                self._bytes -= oldest.size
            else:
                break
