"""The gate every limited call goes through: a permit first (max_concurrency, permits/), then a
rate token (rpm, rates/), and for an LLM with a tpm one unit of its tokens bucket, so a token is
spent only right before the call it pays for; the rest of a call's LLM tokens are charged after
it (``used``), as a debt the next calls of this replica wait for."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from contracts.events import WaitReason
from contracts.work_class import WorkClass
from services.orchestrator.permits import PermitPool
from services.orchestrator.ports import Permit
from services.orchestrator.rates.limits import TOKENS
from services.orchestrator.rates.tokens import RateTokens

__all__ = ["ClassedLimitGate", "LimitGate"]


class _NoPermit:
    async def release(self) -> None:
        return None


class LimitGate:
    """A PermitGate over the permits (when any resource has a max_concurrency) and the rate
    tokens (when any has an rpm)."""

    def __init__(self, permits: PermitPool | None, tokens: RateTokens | None) -> None:
        self._permits = permits
        self._tokens = tokens
        self._taking: Counter[str] = Counter()

    def limits(self, resource: str) -> bool:
        return self._caps(resource) or self.rate_limited(resource)

    def rate_limited(self, resource: str) -> bool:
        return self._tokens is not None and (
            self._tokens.limits(resource) or self._tokens.limits(resource + TOKENS)
        )

    def _caps(self, resource: str) -> bool:
        return self._permits is not None and self._permits.limits(resource)

    def for_class(self, work_class: WorkClass) -> ClassedLimitGate:
        """This gate, taking permits as ``work_class`` (permits/priority.py)."""
        return ClassedLimitGate(self, work_class)

    async def acquire(self, resource: str, work_class: WorkClass = "single") -> Permit:
        permit: Permit = (
            await self._permits.acquire(resource, work_class)
            if self._permits is not None and self._caps(resource)
            else _NoPermit()
        )
        if self._tokens is None or not self.rate_limited(resource):
            return permit
        self._taking[resource] += 1
        try:
            for bucket in (resource, resource + TOKENS):  # a call, then its first LLM token
                if self._tokens.limits(bucket):
                    await self._tokens.take(bucket)
        except BaseException:
            await permit.release()
            raise
        finally:
            self._taking[resource] -= 1
        return permit

    def waiting_reason(self, resource: str) -> WaitReason:
        """Why a wait for ``resource`` lasts: ``rate_limited`` when calls here wait for its
        tokens (or it has no max_concurrency), else ``target_busy``."""
        if self.rate_limited(resource) and (self._taking[resource] or not self._caps(resource)):
            return "rate_limited"
        return "target_busy"

    async def throttled(self, resource: str, retry_after_s: float | None) -> None:
        if self._tokens is None:
            return
        for bucket in (resource, resource + TOKENS):
            if self._tokens.limits(bucket):
                await self._tokens.throttled(bucket, retry_after_s)

    def used(self, resource: str, tokens: int) -> None:
        """A call to ``resource`` used ``tokens`` LLM tokens (one was taken before it)."""
        bucket = resource + TOKENS
        if self._tokens is not None and self._tokens.limits(bucket):
            self._tokens.charge(bucket, self._tokens.units(bucket, tokens) - 1)


@dataclass(frozen=True)
class ClassedLimitGate:
    """A LimitGate whose permits are taken as one class of work (conversation, single
    simulation, suite member); everything else is the gate's."""

    gate: LimitGate
    work_class: WorkClass

    async def acquire(self, resource: str) -> Permit:
        return await self.gate.acquire(resource, self.work_class)

    def limits(self, resource: str) -> bool:
        return self.gate.limits(resource)

    def rate_limited(self, resource: str) -> bool:
        return self.gate.rate_limited(resource)

    def waiting_reason(self, resource: str) -> WaitReason:
        return self.gate.waiting_reason(resource)

    async def throttled(self, resource: str, retry_after_s: float | None) -> None:
        await self.gate.throttled(resource, retry_after_s)

    def used(self, resource: str, tokens: int) -> None:
        self.gate.used(resource, tokens)
