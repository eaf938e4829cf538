"""Liveness, readiness, metrics and the AsyncAPI document."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.dependencies import BrokerDep, MetricsDep

__all__ = ["load_asyncapi", "router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 200 only while the broker is reachable",
    responses={503: {"description": "The broker is not reachable"}},
)
async def readyz(broker: BrokerDep) -> JSONResponse:
    if broker.is_ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "broker unreachable"}, status_code=503, headers={"Retry-After": "5"}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/asyncapi",
    summary="The AsyncAPI document of the events (RabbitMQ): names, routing keys, schemas",
    tags=["documentation"],
)
async def asyncapi(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.state.asyncapi  # read once, at start-up
    return document


def load_asyncapi() -> dict[str, Any]:
    """The AsyncAPI document shipped in the contracts package."""
    text = resources.files("contracts").joinpath("asyncapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
