"""Suite files: include, bare lists, and bad files named by file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from contracts.requests import SimulationCreate
from contracts.scenarios import simulation_body
from services.common.suite_files import SuiteFileError, load_suite

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "suite.yaml"


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _error(paths: list[Path]) -> SuiteFileError:
    with pytest.raises(SuiteFileError) as caught:
        load_suite(paths)
    return caught.value


def test_the_example_suite_loads_and_every_scenario_is_a_valid_request() -> None:
    suite = load_suite([EXAMPLE])
    assert suite.name == "demo-teacher"
    assert len(suite.scenarios) == 3
    assert {scenario.bot.target for scenario in suite.scenarios} == {"default", "llm"}
    assert all(scenario.criteria and scenario.assertions for scenario in suite.scenarios)
    for scenario in suite.scenarios:
        SimulationCreate.model_validate(simulation_body(scenario))


def test_a_good_file_loads_with_its_settings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "suite.yaml",
        """
        name: smoke
        repeat: 3
        concurrency: 2
        scenarios:
          - name: one
            user: {opening: hi}
          - name: two
            user: {opening: hello}
            repeat: 1
        """,
    )
    suite = load_suite([path])
    assert (suite.name, suite.repeat, suite.concurrency) == ("smoke", 3, 2)
    assert [suite.repeat_of(s) for s in suite.scenarios] == [3, 1]


def test_a_bare_list_is_a_suite_named_after_its_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "bare.yaml", "- name: one\n  user: {opening: hi}\n")
    suite = load_suite([path])
    assert suite.name == "bare"
    assert [s.name for s in suite.scenarios] == ["one"]


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "parts/more.yaml",
        """
        repeat: 4
        include: [deeper/last.yaml]
        scenarios:
          - {name: included, user: {opening: hi}}
        """,
    )
    _write(tmp_path, "parts/deeper/last.yaml", "- {name: deepest, user: {opening: hi}}\n")
    main = _write(
        tmp_path,
        "main.yaml",
        """
        name: main
        include: [parts/more.yaml]
        scenarios:
          - {name: own, user: {opening: hi}}
        """,
    )
    suite = load_suite([main])
    assert [s.name for s in suite.scenarios] == ["deepest", "included", "own"]
    # an included file's repeat is the default of its own scenarios, not of the suite
    assert [suite.repeat_of(s) for s in suite.scenarios] == [1, 4, 1]


def test_several_files_make_one_suite(tmp_path: Path) -> None:
    first = _write(
        tmp_path, "a.yaml", "{name: a, concurrency: 5, scenarios: [{name: x, user: {opening: hi}}]}"
    )
    second = _write(tmp_path, "b.yaml", "- {name: y, user: {opening: hi}}\n")
    suite = load_suite([first, second])
    assert (suite.name, suite.concurrency) == ("a", 5)
    assert [s.name for s in suite.scenarios] == ["x", "y"]


def test_a_field_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.yaml",
        """
        name: bad
        scenarios:
          - name: fine
            user: {opening: hi}
          - name: broken
            user:
              opening: hi
              script:
                - ok
                - ""
            max_turns: 99
        """,
    )
    error = _error([path])
    assert [str(p).split(": ", 2)[:2] for p in error.problems] == [
        [f"{path}:10", "scenarios[1].user.script[1]"],
        [f"{path}:11", "scenarios[1].max_turns"],
    ]
    assert "at least 1 character" in str(error)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        # a missing field is named on its mapping's line
        ("scenarios:\n  - user: {opening: hi}\n", 2, "scenarios[0].name", "Field required"),
        # an unknown field is named on its own line
        (
            "- name: a\n  user: {opening: hi}\n  judje: x\n",
            3,
            "scenarios[0].judje",
            "Extra inputs are not permitted",
        ),
        # an assertion with two checks, and a bad regex
        (
            "- name: a\n  user: {opening: hi}\n  assertions:\n    - {contains: a, matches: b}\n",
            4,
            "scenarios[0].assertions[0]",
            "exactly one of",
        ),
        (
            "- name: a\n  user: {opening: hi}\n  assertions:\n    - turn: 1\n      matches: '('\n",
            5,
            "scenarios[0].assertions[0].matches",
            "not a valid regular expression",
        ),
        # min_turns above max_turns
        (
            "- name: a\n  user: {opening: hi}\n  max_turns: 2\n  min_turns: 3\n",
            4,
            "scenarios[0].min_turns",
            "more than max_turns",
        ),
        # nothing to send
        ("- name: a\n  user:\n    goal: g\n", 1, "scenarios[0]", "nothing to send"),
        # a wrong type at the top, and an empty suite
        ("just a string\n", 1, "(file)", "Input should be a valid dictionary"),
        ("name: empty\n", 1, "(file)", "has scenarios or include"),
        ("name: x\nrepeat: lots\nscenarios: []\n", 2, "repeat", "valid integer"),
        # YAML itself
        ("scenarios:\n  - name: a\n   bad: indent\n", 3, "(yaml)", "not valid YAML"),
        ("", 1, "(file)", "the file is empty"),
        ("name: a\nname: b\nscenarios: []\n", 2, "name", "given twice"),
    ],
)
def test_each_kind_of_bad_file_is_located(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = _write(tmp_path, "bad.yaml", text) if text else tmp_path / "bad.yaml"
    if not text:
        path.write_text("", encoding="utf-8")
    problem = _error([path]).problems[0]
    assert (problem.path, problem.line, problem.field) == (path, line, field)
    assert message in problem.message
    assert str(problem).startswith(f"{path}:{line}: {field}: ")


def test_a_missing_include_is_named_where_it_is_included(tmp_path: Path) -> None:
    path = _write(tmp_path, "main.yaml", "include:\n  - parts/a.yaml\n  - parts/missing.yaml\n")
    _write(tmp_path, "parts/a.yaml", "- {name: a, user: {opening: hi}}\n")
    problem = _error([path]).problems[0]
    assert (problem.path, problem.line, problem.field) == (path, 3, "include[1]")
    assert "no such file" in problem.message


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    main = _write(tmp_path, "main.yaml", "include: [part.yaml]\n")
    part = _write(tmp_path, "part.yaml", "- name: a\n  user: {opening: hi}\n  repeat: 0\n")
    problem = _error([main]).problems[0]
    assert (problem.path, problem.line, problem.field) == (part, 3, "scenarios[0].repeat")


def test_an_include_cycle_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    b = _write(
        tmp_path, "b.yaml", "include: [a.yaml]\nscenarios: [{name: x, user: {opening: hi}}]\n"
    )
    problem = _error([a]).problems[0]
    assert (problem.path, problem.line, problem.field) == (b, 1, "include[0]")
    assert "include cycle" in problem.message
    selfish = _write(tmp_path, "self.yaml", "include: [./self.yaml]\n")
    assert "include cycle" in _error([selfish]).problems[0].message


def test_a_name_used_twice_across_files_is_named_at_the_second(tmp_path: Path) -> None:
    main = _write(
        tmp_path,
        "main.yaml",
        "include: [part.yaml]\nscenarios:\n  - user: {opening: hi}\n    name: dup\n",
    )
    part = _write(tmp_path, "part.yaml", "- {name: dup, user: {opening: hi}}\n")
    problem = _error([main]).problems[0]
    assert (problem.path, problem.line, problem.field) == (main, 4, "name")
    assert f"already used at {part}:1" in problem.message


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    problem = _error([tmp_path / "nope.yaml"]).problems[0]
    assert (problem.path, problem.line, problem.field) == (tmp_path / "nope.yaml", 1, "(file)")
