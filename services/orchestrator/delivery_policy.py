"""What becomes of a request delivery once its run stopped: ack, requeue or dead-letter.

The one rule: only a body that is not a valid request is poison (dead-lettered on its first
delivery, as nothing will ever process it). Anything that goes wrong after the body decoded
(a log read that timed out, a lost channel, a bug) hands the request back to the queue, after
a short pause that grows with each delivery so a persistent fault does not spin: the quorum
queue's delivery limit bounds the retries, and the run on the last delivery ends the
simulation with a terminal event (``too_many_interruptions``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.orchestrator.event_publisher import OwnershipLost
from services.orchestrator.simulation import EventPublishError, HandBack

__all__ = ["InvalidRequest", "Settlement", "Verdict", "settle"]

REQUEUE_PAUSE_BASE_S = 0.25
REQUEUE_PAUSE_MAX_S = 5.0


class InvalidRequest(Exception):
    """The body is not a valid request (not JSON, wrong schema): poison.

    FastStream validates the body before the handler runs and, with
    ``AckPolicy.REJECT_ON_ERROR``, rejects an invalid one without requeue: the one error it
    ever sees, since the handler settles every other outcome through ``settle``."""


class Settlement(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Verdict:
    settlement: Settlement
    pause_s: float = 0.0
    """How long to hold the request before handing it back (an unexpected error only)."""
    expected: bool = True
    """False for an error nobody planned for: log it with its traceback."""


def settle(error: BaseException | None, *, delivery: int) -> Verdict:
    """The verdict on delivery number ``delivery`` (1 = first) of a request whose run ended
    with ``error`` (None: its terminal event is confirmed, or the log already had one)."""
    if error is None:
        return Verdict(Settlement.ACK)
    if isinstance(error, InvalidRequest):
        return Verdict(Settlement.DEAD_LETTER)
    if isinstance(error, HandBack | OwnershipLost | EventPublishError):
        return Verdict(Settlement.REQUEUE)  # planned: the next attempt resumes from the log
    pause_s = min(REQUEUE_PAUSE_BASE_S * 2 ** max(delivery - 1, 0), REQUEUE_PAUSE_MAX_S)
    return Verdict(Settlement.REQUEUE, pause_s=pause_s, expected=False)
