"""`convsim suite run | watch` and `convsim diff` as a user runs them: a real CLI process and its
httpx client against a fake gateway that is a real loopback HTTP server (tests/fakes/
suite_gateway.py): exit codes, --fail-under, the reports, Ctrl-C (cancels), watch, diff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, Skipped

from tests.fakes.server import serve_in_thread
from tests.fakes.suite_gateway import (
    CRITERION_FAILING,
    FakeSuiteGateway,
    canned_runs,
    passing_runs,
)
from tests.integration.processes import REPO, default_sigint, wait_until

pytestmark = pytest.mark.integration

SUITE_FILE = """\
name: first-file
repeat: 2
concurrency: 3
scenarios:
  - name: greets
    user: {opening: hello}
    criteria: [The bot asks for the learner's name.]
  - name: thanks
    user: {opening: hello}
"""
SECOND_FILE = """\
- name: praises
  user: {opening: hello}
  assertions:
    - {turn: 2, contains: well done}
"""
BAD_FILE = """\
name: broken
scenarios:
  - name: greets
    user: {opening: hello}
    max_turns: many
"""


def served(fake: FakeSuiteGateway) -> Iterator[tuple[FakeSuiteGateway, str]]:
    with serve_in_thread(fake.app()) as (url, _):
        yield fake, url


@pytest.fixture
def failing() -> Iterator[tuple[FakeSuiteGateway, str]]:
    yield from served(FakeSuiteGateway(canned_runs()))


@pytest.fixture
def held() -> Iterator[tuple[FakeSuiteGateway, str]]:
    yield from served(FakeSuiteGateway(canned_runs(), hold=True))


@pytest.fixture
def suite_files(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "suite.yaml", tmp_path / "more.yaml"
    first.write_text(SUITE_FILE, encoding="utf-8")
    second.write_text(SECOND_FILE, encoding="utf-8")
    return [first, second]


def _command(url: str, *args: str | Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "CONVSIM_GATEWAY_URL": url, "COLUMNS": "200"}
    return [sys.executable, "-m", "services.cli", *map(str, args)], env


def convsim(url: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    command, env = _command(url, *args)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def interrupted(fake: FakeSuiteGateway, url: str, *args: str | Path) -> tuple[int, str, str]:
    """Run the CLI, press Ctrl-C once it follows the suite's events: its exit code and output."""
    command, env = _command(url, *args)
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        wait_until(fake.streaming.is_set, timeout_s=30, what="the CLI following the suite")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_a_failing_suite_exits_1_with_its_reports(
    failing: tuple[FakeSuiteGateway, str], suite_files: list[Path], tmp_path: Path
) -> None:
    fake, url = failing
    junit, html, report = tmp_path / "r.xml", tmp_path / "r.html", tmp_path / "r.json"
    done = convsim(
        url, "suite", "run", *suite_files, "--junit", junit, "--html", html, "--json", report
    )
    assert done.returncode == 1, done.stdout + done.stderr

    # Two files merge into one suite named after the first, its repeat and concurrency kept.
    [posted] = fake.posted
    assert posted["name"] == "first-file"
    assert [s["name"] for s in posted["scenarios"]] == ["greets", "thanks", "praises"]
    assert (posted["repeat"], posted["concurrency"]) == (2, 3)

    out = done.stdout
    assert "[6/6] praises #2: pass" in out
    assert "✗ thanks 1/2 passed" in out
    assert f"#2 fail: criterion failed: {CRITERION_FAILING}" in out
    assert "pass rate 66.7% (4/6), pass^k 33.3%" in out

    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert len(cases) == 6
    assert sum(isinstance(r, Failure) for case in cases for r in case.result) == 2
    assert 'class="turn bot failing"' in html.read_text(encoding="utf-8")
    assert json.loads(report.read_text(encoding="utf-8"))["pass_hat_k"] == pytest.approx(1 / 3)


def test_fail_under_lets_a_good_enough_pass_rate_exit_0(
    failing: tuple[FakeSuiteGateway, str], suite_files: list[Path]
) -> None:
    _, url = failing
    assert convsim(url, "suite", "run", *suite_files, "--fail-under", "0.6").returncode == 0
    assert convsim(url, "suite", "run", *suite_files, "--fail-under", "0.7").returncode == 1


def test_every_scenario_passing_exits_0_and_options_override_the_file(
    suite_files: list[Path],
) -> None:
    for fake, url in served(FakeSuiteGateway(passing_runs())):
        done = convsim(url, "suite", "run", suite_files[0], "--repeat", "3", "--concurrency", "1")
        assert done.returncode == 0, done.stdout + done.stderr
        [posted] = fake.posted
        assert (posted["repeat"], posted["concurrency"]) == (3, 1)
        assert "pass rate 100.0% (6/6)" in done.stdout


def test_a_bad_suite_file_exits_2_naming_file_line_and_field_before_anything_runs(
    failing: tuple[FakeSuiteGateway, str], tmp_path: Path
) -> None:
    fake, url = failing
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FILE, encoding="utf-8")
    done = convsim(url, "suite", "run", bad)
    assert done.returncode == 2
    assert f"{bad}:5: scenarios[0].max_turns:" in done.stderr
    missing = convsim(url, "suite", "run", tmp_path / "nowhere.yaml")
    assert missing.returncode == 2
    assert fake.posted == []


def test_ctrl_c_cancels_the_suite_and_exits_130(
    held: tuple[FakeSuiteGateway, str], suite_files: list[Path], tmp_path: Path
) -> None:
    fake, url = held
    junit = tmp_path / "cancelled.xml"
    returncode, out, err = interrupted(fake, url, "suite", "run", *suite_files, "--junit", junit)
    assert returncode == 130, out + err
    assert fake.deleted == [fake.suite_id]
    assert f"interrupted: cancelling suite {fake.suite_id}" in out
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert [bool(case.result) and isinstance(case.result[0], Skipped) for case in cases] == [
        False
    ] + [True] * 5


def test_watch_reattaches_and_exits_as_run_would(
    failing: tuple[FakeSuiteGateway, str], tmp_path: Path
) -> None:
    fake, url = failing
    html = tmp_path / "watched.html"
    done = convsim(url, "suite", "watch", fake.suite_id, "--html", html)
    assert done.returncode == 1, done.stdout + done.stderr
    assert fake.posted == []
    assert "suite completed: pass rate 66.7%" in done.stdout
    assert 'class="turn bot failing"' in html.read_text(encoding="utf-8")
    assert convsim(url, "suite", "watch", fake.suite_id, "--fail-under", "0.5").returncode == 0
    assert convsim(url, "suite", "watch", "no-such-suite").returncode == 1


def test_ctrl_c_in_watch_lets_go_without_cancelling(held: tuple[FakeSuiteGateway, str]) -> None:
    fake, url = held
    returncode, out, err = interrupted(fake, url, "suite", "watch", fake.suite_id)
    assert returncode == 130, out + err
    assert fake.deleted == []
    assert "stopped watching" in out


def test_diff_shows_two_transcripts_with_their_verdicts(
    failing: tuple[FakeSuiteGateway, str],
) -> None:
    fake, url = failing
    greets, praises = fake.runs[0].simulation_id, fake.runs[4].simulation_id
    done = convsim(url, "diff", greets, praises)
    assert done.returncode == 1, done.stdout + done.stderr
    assert greets in done.stdout
    assert praises in done.stdout
    assert "≠ 4" in done.stdout
    assert "verdict fail" in done.stdout
    assert "2 of 4 lines differ" in done.stdout
    same = convsim(url, "diff", greets, greets)
    assert same.returncode == 0
    assert "0 of 4 lines differ" in same.stdout
