"""FastAPI dependencies: the objects the lifespan built, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.access import Access
from services.gateway.broker import GatewayBroker
from services.gateway.idempotency import IdempotencyIndex
from services.gateway.metrics import GatewayMetrics
from services.gateway.relay import EventRelay
from services.gateway.settings import GatewaySettings

__all__ = [
    "AccessDep",
    "BrokerDep",
    "IdempotencyDep",
    "MetricsDep",
    "OwnerDep",
    "RelayDep",
    "SettingsDep",
]


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _broker(request: Request) -> GatewayBroker:
    broker: GatewayBroker = request.app.state.broker
    return broker


def _relay(request: Request) -> EventRelay:
    relay: EventRelay = request.app.state.relay
    return relay


def _idempotency(request: Request) -> IdempotencyIndex:
    index: IdempotencyIndex = request.app.state.idempotency
    return index


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


def _metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


def _owner(request: Request) -> str | None:
    """The caller's owner name (set by AccessMiddleware); None while API keys are off."""
    owner: str | None = getattr(request.state, "owner", None)
    return owner


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
BrokerDep = Annotated[GatewayBroker, Depends(_broker)]
RelayDep = Annotated[EventRelay, Depends(_relay)]
IdempotencyDep = Annotated[IdempotencyIndex, Depends(_idempotency)]
AccessDep = Annotated[Access, Depends(_access)]
OwnerDep = Annotated[str | None, Depends(_owner)]
MetricsDep = Annotated[GatewayMetrics, Depends(_metrics)]
