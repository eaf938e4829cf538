"""The two log formats: JSON lines for pipelines, text for people."""

from __future__ import annotations

import json
import logging

import pytest

from services.common.log_setup import (
    MAX_TRACEBACK_CHARS,
    LogFormat,
    bounded_traceback,
    configure_logging,
)


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


def _deep_error(depth: int) -> BaseException:
    """An error raised under ``depth`` distinct frames (two functions calling each other, so
    Python does not fold them as repeats), with a cause: the shape of a lost connection ending
    hundreds of awaits."""

    def ping(level: int) -> None:
        if level == 0:
            try:
                raise TimeoutError("the first failure")
            except TimeoutError as cause:
                raise RuntimeError("the error the record is about") from cause
        pong(level - 1)

    def pong(level: int) -> None:
        ping(level)

    try:
        ping(depth)
    except RuntimeError as error:
        return error
    raise AssertionError("not raised")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_traceback_is_bounded_and_keeps_both_ends(
    capsys: pytest.CaptureFixture[str], log_format: LogFormat
) -> None:
    configure_logging("orchestrator", "INFO", log_format)
    error = _deep_error(depth=300)
    logging.getLogger("convsim.test").error("stopped", exc_info=error)
    line = capsys.readouterr().err.strip()
    traceback = json.loads(line)["exc_info"] if log_format == "json" else line
    assert len(traceback) < MAX_TRACEBACK_CHARS + 200
    assert "characters of this traceback left out" in traceback
    assert "Traceback" in traceback[:500]
    assert "TimeoutError: the first failure" in traceback
    assert traceback.rstrip().endswith("RuntimeError: the error the record is about")


def test_a_short_traceback_is_whole(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("orchestrator", "INFO", "json")
    logging.getLogger("convsim.test").error("stopped", exc_info=_deep_error(depth=3))
    traceback = json.loads(capsys.readouterr().err.strip())["exc_info"]
    assert "left out" not in traceback
    assert traceback == bounded_traceback(traceback)
