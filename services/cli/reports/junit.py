"""The JUnit XML report: one testcase per scenario x repeat, for CI.

A run that did not pass is a ``<failure>`` whose message names the criterion or the assertion
(an unjudged criterion too: it is not a pass); a run that never ended is ``<skipped>``.
"""

from __future__ import annotations

from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from services.cli.reports.model import ReportRun, SuiteReport

__all__ = ["junit_xml", "write_junit"]


def junit_xml(report: SuiteReport) -> JUnitXml:
    suite = TestSuite(report.name)
    suite.timestamp = (report.created_at or report.generated_at).isoformat()
    for scenario in report.scenarios:
        for run in scenario.runs:
            suite.add_testcase(_testcase(report.name, run))
    suite.update_statistics()  # type: ignore[no-untyped-call]
    xml = JUnitXml(f"convsim {report.name}")
    xml.add_testsuite(suite)
    xml.update_statistics()  # type: ignore[no-untyped-call]
    return xml


def write_junit(report: SuiteReport, path: Path) -> None:
    junit_xml(report).write(str(path), pretty=True)


def _testcase(suite_name: str, run: ReportRun) -> TestCase:
    case = TestCase(
        f"{run.scenario} [repeat {run.repeat_index}]",
        classname=f"{suite_name}.{run.scenario}",
        time=(run.duration_ms or 0) / 1000,
    )
    if run.simulation_id:
        case.system_out = "\n".join(
            [f"simulation {run.simulation_id}"]
            + [f"{t.role}: {t.content}" for t in run.turns if not t.from_history]
        )
    if run.passed:
        return case
    problems = run.problems
    if run.verdict is None and run.status not in ("completed", "failed"):
        case.result = [Skipped(problems[0] if problems else run.status, run.status)]
        return case
    failure = Failure(_message(run), run.outcome)
    failure.text = "\n".join(problems)
    case.result = [failure]
    return case


def _message(run: ReportRun) -> str:
    """The first reason, naming what failed: the error, a criterion, an assertion."""
    if run.status == "failed" and run.error is not None:
        return f"simulation failed ({run.error.code}): {run.error.message}"
    if run.failed_criteria:
        return f"criterion failed: {run.failed_criteria[0].criterion}"
    if run.failed_assertions:
        first = run.failed_assertions[0]
        where = f" (bot reply {first.turn})" if first.turn is not None else ""
        return f"assertion failed: {first.assertion}{where}"
    if run.unjudged_criteria:
        return f"criterion unjudged: {run.unjudged_criteria[0].criterion}"
    problems = run.problems
    return problems[0] if problems else f"verdict {run.outcome}"
