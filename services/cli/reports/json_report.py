"""The JSON report: the whole :class:`SuiteReport`, machine-readable."""

from __future__ import annotations

from pathlib import Path

from services.cli.reports.model import SuiteReport

__all__ = ["write_json"]


def write_json(report: SuiteReport, path: Path) -> None:
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
