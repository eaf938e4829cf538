"""The rate-limited fake LLM of ``--llm-rpm``: a provider's limit as a token bucket (``rpm`` a
minute, ``burst`` at once; a call over it is answered 429 with Retry-After: 1), the times of
what it admitted and refused, and the driver's reading of them (throughput against the limit,
429s after the warm-up)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProviderLimit", "rate_report"]

WARM_UP_S = 5.0


@dataclass
class ProviderLimit:
    rpm: float
    burst: float
    admitted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    _tokens: float | None = None
    _at: float = 0.0

    def admit(self) -> bool:
        """Whether a call arriving now is within the limit (one event loop: no lock)."""
        now = time.time()
        per_s = self.rpm / 60
        if self._tokens is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * per_s)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.admitted.append(now)
            return True
        self.refused.append(now)
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "rpm": self.rpm,
            "burst": self.burst,
            "admitted": self.admitted,
            "refused": self.refused,
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
