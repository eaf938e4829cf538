"""FastAPI dependencies: the objects the lifespan built, as Annotated aliases.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that
cost more than the whole request under a burst of requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.access import Access
from services.gateway.broker import GatewayBroker
from services.gateway.idempotency import IdempotencyIndex
from services.gateway.metrics import GatewayMetrics
from services.gateway.relay import EventRelay
from services.gateway.settings import GatewaySettings
from services.gateway.suites.book import SuiteBook

__all__ = [
    "AccessDep",
    "BrokerDep",
    "IdempotencyDep",
    "MetricsDep",
    "OwnerDep",
    "RelayDep",
    "SettingsDep",
    "SuiteBookDep",
]


async def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def _broker(request: Request) -> GatewayBroker:
    broker: GatewayBroker = request.app.state.broker
    return broker


async def _relay(request: Request) -> EventRelay:
    relay: EventRelay = request.app.state.relay
    return relay


async def _idempotency(request: Request) -> IdempotencyIndex:
    index: IdempotencyIndex = request.app.state.idempotency
    return index


async def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


async def _metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


async def _suite_book(request: Request) -> SuiteBook:
    book: SuiteBook = request.app.state.suite_book
    return book


async def _owner(request: Request) -> str | None:
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
SuiteBookDep = Annotated[SuiteBook, Depends(_suite_book)]
