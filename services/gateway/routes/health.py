"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.gateway.dependencies import BrokerDep

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


@router.get("/metrics", summary="Prometheus metrics (not yet available)", status_code=501)
async def metrics() -> JSONResponse:
    return JSONResponse({"detail": "metrics are not implemented yet"}, status_code=501)
