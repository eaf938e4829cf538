"""A provider's rate limit, for the fakes: a token bucket of ``per_s`` calls a second holding at
most ``burst``; a call over it is answered 429 with Retry-After. Counts what it admitted and
refused, with their times (monotonic), for throughput and 429 measurements."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["RateLimit"]


@dataclass
class RateLimit:
    per_s: float
    burst: float
    retry_after_s: int = 1
    admitted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    _tokens: float | None = None
    _at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> bool:
        """Whether a call arriving now is within the limit (it is counted either way)."""
        with self._lock:
            now = time.monotonic()
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
