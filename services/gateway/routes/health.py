"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.dependencies import BrokerDep, MetricsDep

__all__ = ["router"]

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
