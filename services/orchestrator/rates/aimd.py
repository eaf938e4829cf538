"""The refiller's effective rate: additive increase, multiplicative decrease (pure, no I/O).

A 429 halves the rate (not below ``floor``) and pauses refilling for its Retry-After; the 429s
of calls already in flight when the first one came (within ``cooldown_s`` of a decrease) do not
halve it again, nor do those during the pause, so a burst of 429s is one decrease. Each second
without a 429 the rate grows by
``increase`` of the configured rate, back up to it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Aimd"]

DECREASE = 0.5
INCREASE = 0.05
FLOOR = 0.05
COOLDOWN_S = 1.0


@dataclass
class Aimd:
    configured_per_s: float
    decrease: float = DECREASE
    increase: float = INCREASE
    """Of the configured rate, per second without a 429."""
    floor: float = FLOOR
    """Of the configured rate: the lowest the rate goes."""
    cooldown_s: float = COOLDOWN_S
    rate_per_s: float = field(init=False)
    paused_until: float = field(default=float("-inf"))
    _decreased_at: float = field(default=float("-inf"))
    _grown_at: float = field(default=float("-inf"))
    _due: float = 0.0
    """Tokens owed to the bucket so far (the fraction not published yet)."""
    _counted_at: float | None = None
    decreases: int = 0

    def __post_init__(self) -> None:
        self.rate_per_s = self.configured_per_s

    def throttled(self, now: float, retry_after_s: float | None) -> bool:
        """A 429 was seen; True when it lowered the rate (False: within the cooldown)."""
        # A 429 during a pause or the cooldown answers a call made before the decrease.
        echo = now < self.paused_until or now - self._decreased_at < self.cooldown_s
        if retry_after_s:
            self.paused_until = max(self.paused_until, now + retry_after_s)
        if echo:
            return False
        self.rate_per_s = max(self.configured_per_s * self.floor, self.rate_per_s * self.decrease)
        self._decreased_at = self._grown_at = now
        self._due = 0.0
        self.decreases += 1
        return True

    def tokens_due(self, now: float) -> int:
        """How many tokens to publish now (the rate grows first, for the time gone by)."""
        last = now if self._counted_at is None else self._counted_at
        self._counted_at = now
        self._grow(now)
        if now < self.paused_until:
            return 0
        self._due = min(self._due + (now - max(last, self.paused_until)) * self.rate_per_s, 1e9)
        whole = int(self._due)
        self._due -= whole
        return whole

    def _grow(self, now: float) -> None:
        if self.rate_per_s >= self.configured_per_s:
            self._grown_at = now
            return
        since = max(self._grown_at, self._decreased_at, self.paused_until)
        if now > since:
            step = self.configured_per_s * self.increase * (now - since)
            self.rate_per_s = min(self.configured_per_s, self.rate_per_s + step)
            self._grown_at = now
