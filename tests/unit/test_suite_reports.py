"""Suite reports: the model built from the gateway's answers, HTML, JUnit (read back with a
JUnit parser), JSON, the exit code, and the CLI's live view and diff."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, Skipped
from pydantic import ValidationError
from rich.console import Console

from contracts.judgement import CriterionResult
from contracts.scenarios import Scenario, SuiteCreate, UserSpec
from contracts.suites import SuiteCancellingEvent
from services.cli.diff import diff_table
from services.cli.reports import ReportPaths, write_reports
from services.cli.reports.histogram import bins_of, histogram_svg
from services.cli.reports.html import render_html
from services.cli.reports.model import SuiteReport, build_report
from services.cli.suite_app import with_overrides
from services.cli.suite_progress import SuiteProgress
from services.cli.suite_run import exit_code
from tests.fakes.suite_gateway import (
    ASSERTION_FAILING,
    CRITERION_FAILING,
    CannedRun,
    FakeSuiteGateway,
    canned_runs,
    passing_runs,
)

NOW = datetime(2026, 1, 2, 4, 0, tzinfo=UTC)


def report_of(fake: FakeSuiteGateway) -> SuiteReport:
    suite = fake.suite_public()
    simulations = {}
    for run in fake.runs:
        body = fake.simulation_public(run.simulation_id)
        if body is not None:
            simulations[run.simulation_id] = body
    return build_report(suite, simulations, generated_at=NOW)


@pytest.fixture
def report() -> SuiteReport:
    return report_of(FakeSuiteGateway(canned_runs()))


def test_the_report_has_the_suites_rates_verdicts_tokens_and_cost(report: SuiteReport) -> None:
    assert report.pass_rate == pytest.approx(4 / 6)
    assert report.pass_hat_k == pytest.approx(1 / 3)
    assert [(s.name, s.passed) for s in report.scenarios] == [
        ("greets", True),
        ("thanks", False),
        ("praises", False),
    ]
    assert [run.verdict for run in report.runs] == ["pass", "pass", "pass", "fail", "fail", "pass"]
    # 2 user lines x (50 + 10) tokens + the judge's 200 + 30, for each of the 6 runs
    assert report.tokens.total == 6 * (2 * 60 + 230)
    assert report.spent_usd == pytest.approx(0.012)
    assert report.bot_latencies_ms() == [120, 340] * 6
    assert not report.all_passed


def test_the_failing_turn_is_the_bot_reply_a_failed_assertion_names(report: SuiteReport) -> None:
    praises_1 = report.scenarios[2].runs[0]
    failing = [turn for turn in praises_1.turns if turn.failing]
    assert [(t.role, t.bot_reply, t.content) for t in failing] == [("bot", 2, "Next word: dog.")]
    assert praises_1.problems == [
        f"assertion failed: {ASSERTION_FAILING} at bot reply 2 ('well done' not in the reply)"
    ]
    thanks_2 = report.scenarios[1].runs[1]
    assert not any(turn.failing for turn in thanks_2.turns)  # a criterion names no turn
    assert thanks_2.problems[0].startswith(f"criterion failed: {CRITERION_FAILING} (")


def test_bot_replies_are_numbered_as_the_judge_does_history_and_parts_included() -> None:
    suite = {
        "suite_id": "s",
        "name": "n",
        "status": "completed",
        "scenarios": [
            {
                "name": "a",
                "passed": False,
                "runs": [
                    {"index": 0, "repeat_index": 1, "simulation_id": "x", "status": "completed"}
                ],
            }
        ],
    }
    turn = {"latency_ms": 5}
    simulation = {
        "simulation_id": "x",
        "status": "completed",
        "turns": [
            {**turn, "index": 0, "role": "bot", "content": "earlier", "from_history": True},
            {**turn, "index": 1, "role": "user", "content": "hi"},
            {**turn, "index": 2, "role": "bot", "content": "one", "part": 1, "parts": 2},
            {**turn, "index": 3, "role": "bot", "content": "two", "part": 2, "parts": 2},
            {**turn, "index": 4, "role": "user", "content": "ok"},
            {**turn, "index": 5, "role": "bot", "content": "three"},
        ],
        "judgement": {
            "simulation_id": "x",
            "verdict": "fail",
            "score": 0.0,
            "assertions": [{"assertion": "contains 'z'", "passed": False, "turn": 1}],
        },
    }
    run = build_report(suite, {"x": simulation}, generated_at=NOW).runs[0]
    assert [(t.content, t.bot_reply, t.failing) for t in run.turns] == [
        ("earlier", None, False),
        ("hi", None, False),
        ("one", 1, True),
        ("two", 1, True),
        ("ok", None, False),
        ("three", 2, False),
    ]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def test_html_marks_the_failing_turn_and_needs_no_network(report: SuiteReport) -> None:
    html = render_html(report)
    page = parse(html)
    failing = [
        attrs
        for tag, attrs in page.elements
        if "failing" in (attrs.get("class") or "").split()
        and "turn" in (attrs.get("class") or "").split()
    ]
    praises_1 = report.scenarios[2].runs[0]
    assert [(a["id"], a["data-bot-reply"]) for a in failing] == [
        (f"turn-{praises_1.simulation_id}-reply-2", "2")
    ]
    tags = {tag for tag, _ in page.elements}
    assert "script" not in tags
    assert "link" not in tags
    assert "img" not in tags
    for _, attrs in page.elements:
        for name in ("src", "href", "action", "xmlns"):
            value = attrs.get(name) or ""
            assert not value or value.startswith("#"), (name, value)
    assert "url(" not in page.style
    assert "@import" not in page.style
    assert "<svg" in html
    assert 'class="bar"' in html
    assert "66.7%" in html
    assert "33.3%" in html
    assert "$0.0120" in html
    assert "the bot never said the learner&#39;s name" in html  # a criterion's reasoning


def test_html_escapes_what_the_bot_said_and_says_unjudged_never_passed() -> None:
    run = CannedRun(
        "tricky",
        1,
        [("user", "hi", 0), ("bot", "<script>alert(1)</script>", 10)],
        "unjudged",
        [CriterionResult(criterion="Be kind.", passed=None, reasoning="no judge LLM")],
    )
    report = report_of(FakeSuiteGateway([run]))
    html = render_html(report)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="unjudged-notice"' in html
    assert report.scenarios[0].passed is False
    assert report.runs[0].problems == ["criterion unjudged: Be kind. (no judge LLM)"]


def test_junit_has_a_testcase_per_scenario_and_repeat_naming_what_failed(
    report: SuiteReport, tmp_path: Path
) -> None:
    path = tmp_path / "report.xml"
    write_reports(report, ReportPaths(junit=path))
    xml = JUnitXml.fromfile(str(path))
    cases = [case for suite in xml for case in suite]
    assert [case.name for case in cases] == [
        f"{scenario} [repeat {repeat}]"
        for scenario in ("greets", "thanks", "praises")
        for repeat in (1, 2)
    ]
    failures = {
        case.name: result for case in cases for result in case.result if isinstance(result, Failure)
    }
    assert set(failures) == {"thanks [repeat 2]", "praises [repeat 1]"}
    assert failures["thanks [repeat 2]"].message == f"criterion failed: {CRITERION_FAILING}"
    assert failures["praises [repeat 1]"].message == (
        f"assertion failed: {ASSERTION_FAILING} (bot reply 2)"
    )
    assert "the bot never said the learner's name" in (failures["thanks [repeat 2]"].text or "")
    suite = next(iter(xml))
    assert (suite.tests, suite.failures, suite.skipped) == (6, 2, 0)


def test_junit_skips_runs_a_cancelled_suite_never_ran(tmp_path: Path) -> None:
    fake = FakeSuiteGateway(canned_runs(), hold=True)
    fake.deleted.append(fake.suite_id)  # the suite was cancelled after its first run
    path = tmp_path / "cancelled.xml"
    write_reports(report_of(fake), ReportPaths(junit=path))
    cases = [case for suite in JUnitXml.fromfile(str(path)) for case in suite]
    kinds = [type(case.result[0]).__name__ if case.result else "passed" for case in cases]
    assert kinds == ["passed"] + ["Skipped"] * 5
    assert all(isinstance(c.result[0], Skipped) for c in cases[1:])


def test_json_report_is_everything_machine_readable(report: SuiteReport, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_reports(report, ReportPaths(json=path))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["pass_rate"] == pytest.approx(4 / 6)
    assert data["pass_hat_k"] == pytest.approx(1 / 3)
    assert data["tokens"]["total"] == report.tokens.total
    runs = [run for scenario in data["scenarios"] for run in scenario["runs"]]
    assert [run["outcome"] for run in runs] == ["pass", "pass", "pass", "fail", "fail", "pass"]
    assert runs[4]["assertions"][0] == {
        "assertion": ASSERTION_FAILING,
        "passed": False,
        "turn": 2,
        "detail": "'well done' not in the reply",
    }
    assert [t["failing"] for t in runs[4]["turns"]] == [False, False, False, True]
    assert runs[3]["problems"][0].startswith("criterion failed:")
    assert SuiteReport.model_validate(data).pass_rate == report.pass_rate


def test_exit_code_passes_only_when_every_scenario_passed_or_the_rate_is_enough(
    report: SuiteReport,
) -> None:
    assert exit_code(report, None) == 1
    assert exit_code(report, 0.6) == 0
    assert exit_code(report, 0.7) == 1
    assert exit_code(report_of(FakeSuiteGateway(passing_runs())), None) == 0


def test_histogram_bins_and_empty_histogram() -> None:
    bins = bins_of([100, 100, 200, 300], max_bins=2)
    assert [(b.low_ms, b.count) for b in bins] == [(100, 3), (201, 1)]
    assert sum(b.count for b in bins_of(list(range(1000)))) == 1000
    assert "no bot replies" in histogram_svg([], "x")


def _scenario(name: str, repeat: int | None = None) -> Scenario:
    return Scenario(name=name, user=UserSpec(opening="hi"), repeat=repeat)


def test_repeat_and_concurrency_from_the_command_line_override_the_files() -> None:
    suite = SuiteCreate(name="s", repeat=1, scenarios=[_scenario("a"), _scenario("b", 5)])
    changed = with_overrides(suite, repeat=3, concurrency=2)
    assert changed.repeat == 3
    assert changed.concurrency == 2
    assert [changed.repeat_of(s) for s in changed.scenarios] == [3, 3]
    assert with_overrides(suite, None, None) == suite
    with pytest.raises(ValidationError, match="more than"):
        with_overrides(
            SuiteCreate(name="s", scenarios=[_scenario(f"s{i}") for i in range(40)]),
            repeat=100,
            concurrency=None,
        )


def test_live_view_has_a_line_per_scenario_with_a_mark_per_run() -> None:
    fake = FakeSuiteGateway(canned_runs(), hold=True)
    state = fake.state()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    progress = SuiteProgress(console)
    progress.show(state, fake.published()[-1])
    console.print(progress._render())
    lines = out.getvalue().splitlines()
    assert any("greets" in line and "1/2" in line and "✓" in line for line in lines)
    assert any("thanks" in line and "0/2" in line for line in lines)
    assert "1/6 ended · 5 running" in lines[-1]


def test_the_plain_progress_says_why_the_suite_stops() -> None:
    fake = FakeSuiteGateway(canned_runs(), hold=True)
    state = fake.state()
    out = io.StringIO()
    progress = SuiteProgress(Console(file=out, force_terminal=False, width=200))
    seq = state.last_seq
    for reason in ("budget_exceeded", "cancelled"):
        seq += 1
        progress.show(state, SuiteCancellingEvent(suite_id=state.suite_id, seq=seq, reason=reason))
    lines = out.getvalue().splitlines()
    assert lines == [
        "budget spent: running members stop before their next call",
        "cancelling: running members are being cancelled",
    ]


def test_diff_marks_the_lines_that_differ() -> None:
    fake = FakeSuiteGateway(canned_runs())
    greets, praises = fake.runs[0], fake.runs[4]
    a = fake.simulation_public(greets.simulation_id)
    b = fake.simulation_public(praises.simulation_id)
    assert a is not None
    assert b is not None
    table, differing = diff_table(a, b)
    assert differing == 2  # the opening and the second bot reply
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(table)
    text = out.getvalue()
    assert "≠ 1" in text
    assert "≠ 4" in text
    assert "verdict pass" in text
    assert "verdict fail" in text
    assert diff_table(a, a)[1] == 0
