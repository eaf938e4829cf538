"""The two log formats: JSON lines for pipelines, text for people."""

from __future__ import annotations

import json
import logging

import pytest

from services.common.log_setup import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_service_and_the_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("orchestrator", "INFO", "json")
    logging.getLogger("convsim.test").info(
        "simulation %s: turn", "s-1", extra={"simulation_id": "s-1", "turn_index": 3}
    )
    record = json.loads(capsys.readouterr().err.strip())
    assert record["service"] == "orchestrator"
    assert record["message"] == "simulation s-1: turn"
    assert (record["simulation_id"], record["turn_index"], record["level"]) == ("s-1", 3, "INFO")


def test_text_lines_are_for_people_and_the_level_is_a_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("gateway", "WARNING", "text")
    logging.getLogger("convsim.test").info("hidden")
    logging.getLogger("convsim.test").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "WARNING gateway convsim.test: shown" in err
