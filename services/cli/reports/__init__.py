"""Suite reports for people (HTML) and for CI (JUnit XML, JSON), from one report model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.cli.reports.html import write_html
from services.cli.reports.json_report import write_json
from services.cli.reports.junit import write_junit
from services.cli.reports.model import SuiteReport

__all__ = ["ReportPaths", "write_reports"]


@dataclass(frozen=True)
class ReportPaths:
    """Where to write each report; None: not wanted."""

    junit: Path | None = None
    html: Path | None = None
    json: Path | None = None

    @property
    def any(self) -> bool:
        return any(path is not None for path in (self.junit, self.html, self.json))


def write_reports(report: SuiteReport, paths: ReportPaths) -> list[Path]:
    """Write the reports asked for; the paths written."""
    written: list[Path] = []
    if paths.junit is not None:
        write_junit(report, paths.junit)
        written.append(paths.junit)
    if paths.html is not None:
        write_html(report, paths.html)
        written.append(paths.html)
    if paths.json is not None:
        write_json(report, paths.json)
        written.append(paths.json)
    return written
