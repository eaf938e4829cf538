"""Rates: per-target request rates (``rpm``) that hold across every orchestrator, built on the
broker (a token bucket queue per resource, one elected refiller), lowered on a 429 for every
replica and raised again as calls succeed (AIMD)."""

from services.orchestrator.rates.aimd import Aimd
from services.orchestrator.rates.gate import LimitGate
from services.orchestrator.rates.limits import RateLimits
from services.orchestrator.rates.names import RateQueues
from services.orchestrator.rates.tokens import RateTokens

__all__ = ["Aimd", "LimitGate", "RateLimits", "RateQueues", "RateTokens"]
