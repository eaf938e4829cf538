"""Permits: per-target caps on calls in flight that hold across every orchestrator, built on
the broker (a queue of N permit messages per limited resource; a call holds one unacked)."""

from services.orchestrator.limited_resources import llm_resource, target_resource
from services.orchestrator.permits.limits import ConcurrencyLimits, LimitSetting
from services.orchestrator.permits.names import PermitQueues
from services.orchestrator.permits.pool import BrokerPermit, PermitPool

__all__ = [
    "BrokerPermit",
    "ConcurrencyLimits",
    "LimitSetting",
    "PermitPool",
    "PermitQueues",
    "llm_resource",
    "target_resource",
]
