"""Ask the gateway for what a suite report shows: the suite, then each member simulation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console

from services.cli.gateway import fail, request
from services.cli.reports.model import SuiteReport, build_report

__all__ = ["fetch_report", "fetch_suite"]


def fetch_suite(client: httpx.Client, suite_id: str) -> dict[str, Any]:
    """``GET /v1/suites/{id}``; a refusal or an error exits (see :func:`gateway.fail`)."""
    response = request(client, "GET", f"/v1/suites/{suite_id}")
    if response.status_code != 200:
        raise fail(Console(stderr=True), response)
    body: dict[str, Any] = response.json()
    return body


def fetch_report(client: httpx.Client, suite_id: str) -> SuiteReport:
    """The report of a suite as it stands now (members not started yet have no transcript)."""
    suite = fetch_suite(client, suite_id)
    simulations: dict[str, dict[str, Any]] = {}
    for scenario in suite.get("scenarios", []):
        for run in scenario.get("runs", []):
            simulation_id = run.get("simulation_id")
            body = _simulation(client, simulation_id) if simulation_id else None
            if body is not None:
                simulations[simulation_id] = body
    return build_report(suite, simulations, generated_at=datetime.now(UTC))


def _simulation(client: httpx.Client, simulation_id: str) -> dict[str, Any] | None:
    """A member's state; None when the gateway does not know it yet (admitted a moment ago)."""
    response = request(client, "GET", f"/v1/simulations/{simulation_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise fail(Console(stderr=True), response)
    body: dict[str, Any] = response.json()
    return body
