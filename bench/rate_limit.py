"""A provider's rate limit as a token bucket (``RateLimit``: the fakes of the tests and of the
bench answer a call over it 429), the rate-limited fake LLM of ``--llm-rpm`` (``ProviderLimit``:
``rpm`` a minute, ``burst`` at once, the times of what it admitted and refused) and the driver's
reading of them (throughput against the limit, 429s after the warm-up)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProviderLimit", "RateLimit", "rate_report"]

WARM_UP_S = 5.0


@dataclass
class RateLimit:
    """A token bucket of ``per_s`` calls a second holding at most ``burst``; a call over it is
    answered 429 with Retry-After ``retry_after_s``. Counts what it admitted and refused, with
    their times on ``clock``."""

    per_s: float
    burst: float
    retry_after_s: int = 1
    clock: Callable[[], float] = time.monotonic
    admitted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    _tokens: float | None = None
    _at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> bool:
        """Whether a call arriving now is within the limit (it is counted either way)."""
        with self._lock:
            now = self.clock()
            if self._tokens is None:
                self._tokens = self.burst
            else:
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.admitted.append(now)
                return True
            self.refused.append(now)
            return False

    def admitted_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t in self.admitted if start <= t < end)

    def refused_since(self, start: float) -> int:
        with self._lock:
            return sum(1 for t in self.refused if t >= start)


class ProviderLimit:
    """The bench's LLM limit: ``rpm`` a minute, ``burst`` at once, on the wall clock (the
    driver reads the times in another process)."""

    def __init__(self, rpm: float, burst: float) -> None:
        self.rpm = rpm
        self._bucket = RateLimit(rpm / 60, burst, clock=time.time)

    def admit(self) -> bool:
        """Whether a call arriving now is within the limit."""
        return self._bucket.admit()

    def stats(self) -> dict[str, Any]:
        return {
            "rpm": self.rpm,
            "burst": self._bucket.burst,
            "admitted": self._bucket.admitted,
            "refused": self._bucket.refused,
        }


def rate_report(stats: dict[str, Any], warm_up_s: float = WARM_UP_S) -> dict[str, Any]:
    """Throughput of the admitted LLM calls against the limit, from the warm-up's end to the
    last admitted call (every simulation waits for the LLM until then), and the 429s."""
    admitted: list[float] = sorted(stats["admitted"])
    refused: list[float] = stats["refused"]
    allowed_per_s = stats["rpm"] / 60
    if len(admitted) < 2:
        return {"allowed_per_s": allowed_per_s, "calls": len(admitted), "refused": len(refused)}
    start, end = admitted[0] + warm_up_s, admitted[-1]
    in_window = sum(1 for t in admitted if start <= t <= end)
    window_s = max(end - start, 1e-9)
    overall_s = max(end - admitted[0], 1e-9)
    return {
        "allowed_per_s": allowed_per_s,
        "calls": len(admitted),
        "throughput_per_s": round(in_window / window_s, 3),
        "ratio_to_allowed": round(in_window / window_s / allowed_per_s, 4),
        "overall_ratio_to_allowed": round(len(admitted) / overall_s / allowed_per_s, 4),
        "window_s": round(window_s, 2),
        "refused": len(refused),
        "refused_after_warm_up": sum(1 for t in refused if t >= start),
        "warm_up_s": warm_up_s,
    }
