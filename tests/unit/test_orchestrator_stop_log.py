"""A run stopped because its events could not be published says what failed, and why."""

from __future__ import annotations

import logging

import pytest

from services.orchestrator.app import log_unpublished
from services.orchestrator.simulation import EventPublishError


def test_the_log_line_names_the_event_and_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    try:
        try:
            raise TimeoutError("no confirm within 10 s")
        except TimeoutError as cause:
            raise EventPublishError("could not publish turn seq 7") from cause
    except EventPublishError as error:
        stopped = error
    with caplog.at_level(logging.ERROR, logger="services.orchestrator.app"):
        log_unpublished("sim-1", stopped)  # outside the except block, as the handler calls it
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "could not publish turn seq 7" in record.getMessage()
    assert "no confirm within 10 s" in record.getMessage()
    assert record.exc_info is None
