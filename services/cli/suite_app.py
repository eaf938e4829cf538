"""``convsim suite run | watch``: run a suite of scenarios on the server, live, with reports.

Exit codes: 0 every scenario passed (or the pass rate reached ``--fail-under``), 1 it did not,
2 a bad suite file or usage (nothing ran), 3 the gateway could not be reached or answered an
error, 130 interrupted (Ctrl-C: ``run`` cancels the suite first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from contracts.scenarios import SuiteCreate
from services.cli.gateway import connect, fail, request
from services.cli.interrupts import CtrlC
from services.cli.options import DEFAULT_GATEWAY, ApiKeyOption, GatewayOption
from services.cli.reports import ReportPaths
from services.cli.suite_run import AttendOptions, attend
from services.common.suite_files import SuiteFileError, load_suite

__all__ = ["suite_app", "with_overrides"]

EXIT_USAGE = 2

suite_app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)

_ReportFile = dict(dir_okay=False, writable=True, resolve_path=True)
JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="Write a JUnit XML report here.", **_ReportFile)
]
HtmlOption = Annotated[
    Path | None,
    typer.Option("--html", help="Write a self-contained HTML report here.", **_ReportFile),
]
JsonReportOption = Annotated[
    Path | None, typer.Option("--json", help="Write the JSON report here.", **_ReportFile)
]
FailUnderOption = Annotated[
    float | None,
    typer.Option(
        "--fail-under",
        min=0.0,
        max=1.0,
        help="Exit 0 when the pass rate (passed runs ÷ runs, 0..1) reaches this, even if some "
        "scenario failed.",
    ),
]


@suite_app.command("run")
def run(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="Suite files (YAML); several merge into one suite.",
        ),
    ],
    repeat: Annotated[
        int | None,
        typer.Option("--repeat", min=1, help="Runs of every scenario (overrides the files)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Runs in flight at most (overrides the file)."),
    ] = None,
    junit: JunitOption = None,
    html: HtmlOption = None,
    json_report: JsonReportOption = None,
    fail_under: FailUnderOption = None,
    cancel_timeout: Annotated[
        float,
        typer.Option(
            "--cancel-timeout", min=0.0, help="Seconds to wait for the suite to cancel on Ctrl-C."
        ),
    ] = 30.0,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a suite from FILE(s), show its progress live, write the reports."""
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        suite = with_overrides(load_suite(files), repeat, concurrency)
    except SuiteFileError as exc:
        for problem in exc.problems:
            errors.print(escape(str(problem)), soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from exc
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(step) for step in error["loc"]) or "(suite)"
            errors.print(f"{where}: {escape(error['msg'])}", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from exc
    options = AttendOptions(
        reports=ReportPaths(junit=junit, html=html, json=json_report),
        fail_under=fail_under,
        cancel_on_interrupt=True,
        cancel_timeout_s=cancel_timeout,
    )
    with CtrlC().installed() as ctrl_c, connect(gateway, api_key) as client:
        response = request(
            client, "POST", "/v1/suites", json=suite.model_dump(mode="json", exclude_none=True)
        )
        if response.status_code == 422:
            fail(errors, response)
            raise typer.Exit(EXIT_USAGE)
        if response.status_code != 202:
            raise fail(errors, response)
        suite_id = response.json()["suite_id"]
        console.print(f"[dim]suite {suite_id}[/dim]")
        raise typer.Exit(attend(client, suite_id, options, console, ctrl_c))


@suite_app.command("watch")
def watch(
    suite_id: Annotated[str, typer.Argument(help="The suite to follow.")],
    junit: JunitOption = None,
    html: HtmlOption = None,
    json_report: JsonReportOption = None,
    fail_under: FailUnderOption = None,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = None,
) -> None:
    """Re-attach to a suite (running or ended): its progress, then the reports and the exit
    code of `run`. Ctrl-C lets go of it; the suite goes on."""
    options = AttendOptions(
        reports=ReportPaths(junit=junit, html=html, json=json_report),
        fail_under=fail_under,
        cancel_on_interrupt=False,
    )
    with CtrlC().installed() as ctrl_c, connect(gateway, api_key) as client:
        raise typer.Exit(attend(client, suite_id, options, Console(highlight=False), ctrl_c))


def with_overrides(suite: SuiteCreate, repeat: int | None, concurrency: int | None) -> SuiteCreate:
    """The suite with the command line's ``--repeat`` (for every scenario, theirs included) and
    ``--concurrency``, validated again (the member limit)."""
    body = suite.model_dump()
    if repeat is not None:
        body["repeat"] = repeat
        for scenario in body["scenarios"]:
            scenario["repeat"] = None
    if concurrency is not None:
        body["concurrency"] = concurrency
    return SuiteCreate.model_validate(body)
