"""Read suite files (YAML): resolve ``include``, validate, and say exactly where a file is wrong.

Everything is checked before anything runs. A problem is reported as ``FILE:LINE: FIELD: what``:
the YAML is composed into nodes (which keep their line) as well as constructed into data, so
the ``loc`` of a pydantic error leads back to the node it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from contracts.scenarios import Scenario, SuiteCreate, SuiteFile

__all__ = ["SuiteFileError", "SuiteProblem", "load_suite", "read_suite_file"]

_Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class SuiteProblem:
    """One thing wrong with a suite file, where it is."""

    path: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class SuiteFileError(ValueError):
    """A suite file can't be used: every problem found, each with its file, line and field."""

    def __init__(self, problems: Sequence[SuiteProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class _Document:
    path: Path
    root: yaml.Node
    data: object


def load_suite(paths: Sequence[Path]) -> SuiteCreate:
    """One suite from one or more files (their scenarios in order; settings from the first)."""
    if not paths:
        raise ValueError("no suite file given")
    scenarios: list[tuple[Scenario, Path, int]] = []
    first, *others = [Path(path) for path in paths]
    settings = _collect(first, scenarios, stack=(), repeat_is_the_suites=True)
    for path in others:
        _collect(path, scenarios, stack=(), repeat_is_the_suites=False)
    _refuse_duplicate_names(scenarios)
    try:
        return SuiteCreate(
            name=settings.name or first.stem,
            repeat=settings.repeat,
            concurrency=settings.concurrency,
            budget_usd=settings.budget_usd,
            scenarios=[scenario for scenario, _, _ in scenarios],
        )
    except ValidationError as exc:
        raise SuiteFileError(
            [
                SuiteProblem(first, 1, _field_name(error["loc"]), _readable(error["msg"]))
                for error in exc.errors()
            ]
        ) from exc


def read_suite_file(path: Path) -> tuple[SuiteFile, yaml.Node]:
    """One file, validated on its own (its includes not followed), with its YAML nodes."""
    document = _parse(path)
    try:
        return SuiteFile.model_validate(document.data), document.root
    except ValidationError as exc:
        raise SuiteFileError(
            [
                _problem_at(document, tuple(error["loc"]), _readable(error["msg"]))
                for error in exc.errors(include_url=False)
            ]
        ) from exc


def _collect(
    path: Path,
    into: list[tuple[Scenario, Path, int]],
    stack: tuple[Path, ...],
    repeat_is_the_suites: bool,
) -> SuiteFile:
    """Add the scenarios of ``path`` (its includes' first) to ``into``, with where each is.

    Only the first file's ``repeat`` is the suite's; another file's is its scenarios' default.
    """
    resolved = path.resolve()
    suite, root = read_suite_file(path)
    document = _Document(path, root, None)
    for index, include in enumerate(suite.include):
        target = (resolved.parent / include).resolve()
        here = ("include", index)
        if target == resolved or target in stack:
            cycle = " -> ".join(str(step) for step in (*stack, resolved, target))
            raise SuiteFileError([_problem_at(document, here, f"include cycle: {cycle}")])
        if not target.is_file():
            raise SuiteFileError([_problem_at(document, here, f"no such file: {target}")])
        _collect(target, into, (*stack, resolved), repeat_is_the_suites=False)
    explicit = "repeat" in suite.model_fields_set and not repeat_is_the_suites
    own_repeat = suite.repeat if explicit else None
    for index, scenario in enumerate(suite.scenarios):
        if own_repeat is not None and scenario.repeat is None:
            scenario = scenario.model_copy(update={"repeat": own_repeat})
        line = _walk(root, ("scenarios", index, "name"))[0]
        into.append((scenario, path, line))
    return suite


def _refuse_duplicate_names(scenarios: list[tuple[Scenario, Path, int]]) -> None:
    seen: dict[str, tuple[Path, int]] = {}
    for scenario, path, line in scenarios:
        if scenario.name in seen:
            first_path, first_line = seen[scenario.name]
            raise SuiteFileError(
                [
                    SuiteProblem(
                        path,
                        line,
                        "name",
                        f"scenario name {scenario.name!r} is already used at "
                        f"{first_path}:{first_line}",
                    )
                ]
            )
        seen[scenario.name] = (path, line)


def _parse(path: Path) -> _Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteFileError([SuiteProblem(path, 1, "(file)", f"cannot read: {exc}")]) from exc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SuiteFileError([SuiteProblem(path, 1, "(file)", "the file is empty")])
        _refuse_duplicate_keys(path, root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SuiteFileError(
            [SuiteProblem(path, line, "(yaml)", f"not valid YAML: {exc.problem or exc}")]
        ) from exc
    except yaml.YAMLError as exc:
        raise SuiteFileError([SuiteProblem(path, 1, "(yaml)", f"not valid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    return _Document(path, root, data)


def _refuse_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """PyYAML keeps the last of two equal keys; in a test file that is a mistake, not intent."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise SuiteFileError(
                        [
                            SuiteProblem(
                                path, key.start_mark.line + 1, key.value, "this key is given twice"
                            )
                        ]
                    )
                seen.add(key.value)
            _refuse_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item)


def _problem_at(document: _Document, loc: _Loc, message: str) -> SuiteProblem:
    line, walked = _walk(document.root, loc)
    return SuiteProblem(document.path, line, _field_name(walked) or "(file)", message)


def _walk(root: yaml.Node, loc: _Loc) -> tuple[int, _Loc]:
    """The line of the deepest node ``loc`` reaches, and the part of ``loc`` that names a field.

    A bare list of scenarios is the ``scenarios`` of the suite. A key that is missing is still
    named (on its mapping's line); what pydantic adds past a field (union members) is dropped.
    """
    steps = list(loc)
    if isinstance(root, yaml.SequenceNode) and steps[:1] == ["scenarios"]:
        steps = steps[1:]
        walked: list[int | str] = ["scenarios"]
    else:
        walked = []
    node = root
    line = root.start_mark.line + 1
    for step in steps:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            walked.append(step)
            found = next(
                ((key, value) for key, value in node.value if getattr(key, "value", None) == step),
                None,
            )
            if found is None:
                break
            key, node = found
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            walked.append(step)
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line, tuple(walked)


def _field_name(loc: Sequence[int | str]) -> str:
    """``("scenarios", 0, "user", "script", 2)`` → ``scenarios[0].user.script[2]``."""
    name = ""
    for step in loc:
        if isinstance(step, int):
            name += f"[{step}]"
        else:
            name += f".{step}" if name else step
    return name


def _readable(message: str) -> str:
    """Pydantic prefixes a validator's own words with its error type; the words are enough."""
    return message.removeprefix("Value error, ")
