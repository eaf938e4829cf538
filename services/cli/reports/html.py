"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from services.cli.reports.histogram import histogram_svg
from services.cli.reports.model import SuiteReport

__all__ = ["render_html", "write_html"]


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("services.cli.reports", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["percent"] = percent
    environment.filters["seconds"] = seconds
    environment.filters["usd"] = usd
    return environment


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def usd(cost: float | None) -> str:
    """A cost, or why there is none: never a made-up figure."""
    return "not priced" if cost is None else f"${cost:.4f}"


def render_html(report: SuiteReport) -> str:
    template = _environment().get_template("report.html.j2")
    # Markup: the SVG is built from numbers, its one text escaped (histogram_svg).
    histogram = Markup(histogram_svg(report.bot_latencies_ms(), "Latency of bot replies"))
    unjudged = any(run.unjudged_criteria for run in report.runs)
    return template.render(report=report, histogram=histogram, unjudged=unjudged)


def write_html(report: SuiteReport, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
