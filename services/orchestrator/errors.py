"""The one error a simulation ends with: a code from the contract's closed set and a message."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from contracts.events import ErrorCode, ErrorInfo

__all__ = ["SimulationFailure", "retry_after_seconds"]


class SimulationFailure(Exception):
    """A remote call failed in a way that ends the simulation with a ``failed`` event."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.throttled = throttled
        """The remote answered 429: it wants fewer calls (rates/ lowers a limited rate)."""

    def with_context(self, context: str) -> SimulationFailure:
        """The same failure, its message prefixed with where it happened."""
        return SimulationFailure(
            self.code,
            f"{context}: {self.message}",
            retryable=self.retryable,
            retry_after_s=self.retry_after_s,
            throttled=self.throttled,
        )

    def to_error_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds; None when absent or invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
