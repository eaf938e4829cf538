"""The one retry policy of remote calls: bounded attempts, exponential backoff with jitter,
Retry-After honoured; only failures marked retryable are retried (tenacity does the loop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from services.orchestrator.errors import SimulationFailure

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def is_worth_retrying(self, error: BaseException) -> bool:
        if not isinstance(error, SimulationFailure) or not error.retryable:
            return False
        # A server asking for a longer pause than we would wait: give up now, say why.
        return error.retry_after_s is None or error.retry_after_s <= self.max_delay_s

    def delay_s(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            initial=self.base_delay_s, max=self.max_delay_s, jitter=self.base_delay_s
        )(state)
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after_s if isinstance(error, SimulationFailure) else None
        return min(self.max_delay_s, max(backoff, retry_after or 0.0))

    def retrying(
        self,
        *,
        before_sleep: Callable[[RetryCallState], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]],
    ) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.delay_s,
            retry=retry_if_exception(self.is_worth_retrying),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )
