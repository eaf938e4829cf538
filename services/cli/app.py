"""``convsim run | chat | watch | get | cancel | diff | suite``: simulations from the terminal,
turns printed live; suites of scenarios with their verdicts and reports (``convsim suite``).

Talks to a gateway (``--gateway`` or CONVSIM_GATEWAY_URL) with the API key of CONVSIM_API_KEY
when keys are on. Exit codes: 0 completed (or cancel accepted), 1 failed or refused,
2 cancelled, 3 the gateway could not be reached or answered an error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console

from services.cli.chat import Chat
from services.cli.diff import show_diff
from services.cli.gateway import connect as _client
from services.cli.gateway import event_stream as _event_stream
from services.cli.gateway import fail as _fail
from services.cli.gateway import request as _request
from services.cli.interrupts import CtrlC
from services.cli.options import ApiKeyOption, GatewayOption
from services.cli.render import TurnPrinter
from services.cli.suite_app import suite_app

__all__ = ["app", "main"]

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
app.add_typer(suite_app, name="suite")

JsonOption = Annotated[bool, typer.Option("--json", help="One event JSON per line.")]
BotTargetOption = Annotated[
    str | None,
    typer.Option("--bot-target", help="A configured bot target (default: `default`)."),
]
BotPromptOption = Annotated[
    Path | None,
    typer.Option(
        "--bot-prompt",
        exists=True,
        dir_okay=False,
        help="A file with the bot's system prompt (openai_chat targets).",
    ),
]
EXIT_BY_STATUS = {"completed": 0, "failed": 1, "cancelled": 2}


def _follow(
    client: httpx.Client, simulation_id: str, as_json: bool, ctrl_c: CtrlC, after: int = 0
) -> int:
    """Print the simulation's events until its end; the exit code its outcome deserves."""
    console = Console(stderr=False, highlight=False)
    printer = TurnPrinter(console)
    status = "running"
    headers = {"Last-Event-ID": str(after)} if after else {}
    path = f"/v1/simulations/{simulation_id}/events"
    with (
        _event_stream(client, "GET", path, ctrl_c, headers=headers) as source,
        printer.waiting(),
    ):
        if source.response.status_code != 200:
            source.response.read()
            raise _fail(console, source.response)
        for sse in source.iter_sse():
            if not sse.data:
                continue  # a keep-alive
            event = json.loads(sse.data)
            if as_json:
                print(sse.data, flush=True)
            else:
                printer.show(event)
            if event["type"] in EXIT_BY_STATUS:
                status = event["type"]
    return EXIT_BY_STATUS.get(status, 3)


@app.command()
def run(
    bot_id: Annotated[
        int | None,
        typer.Option("--bot-id", help="The bot under test (robot_ai_lesson targets)."),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="The opening user message.")
    ] = None,
    max_turns: Annotated[int, typer.Option("--max-turns", min=1, max=50)] = 5,
    min_turns: Annotated[
        int | None,
        typer.Option("--min-turns", min=0, max=50, help="Bot replies before either may end."),
    ] = None,
    persona: Annotated[
        Path | None,
        typer.Option("--persona", exists=True, dir_okay=False, help="A file with the persona."),
    ] = None,
    bot_target: BotTargetOption = None,
    bot_prompt: BotPromptOption = None,
    goal: Annotated[
        str | None,
        typer.Option("--goal", help="What the simulated user tries to achieve."),
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            exists=True,
            dir_okay=False,
            help="A YAML or JSON list of user messages; null lets the simulated user speak. "
            "Quote a message holding ' #' (YAML reads the rest as a comment).",
        ),
    ] = None,
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a simulation and print its turns as they happen."""
    body = _fields(
        max_turns=max_turns,
        bot_id=bot_id,
        user_prompt=prompt,
        min_turns=min_turns,
        bot_target=bot_target,
        goal=goal,
        persona=persona,
        bot_prompt=bot_prompt,
    )
    if script is not None:
        body["script"] = read_script(script)
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        response = _request(client, "POST", "/v1/simulations", json=body)
        if response.status_code != 202:
            raise _fail(Console(), response)
        simulation_id = response.json()["simulation_id"]
        if not as_json:
            Console(highlight=False).print(f"[dim]simulation {simulation_id}[/dim]")
        raise typer.Exit(_follow(client, simulation_id, as_json, ctrl_c))


@app.command()
def chat(
    bot_target: BotTargetOption = None,
    bot_id: Annotated[
        int | None,
        typer.Option("--bot-id", help="The bot to talk to (robot_ai_lesson targets)."),
    ] = None,
    bot_prompt: BotPromptOption = None,
    persona: Annotated[
        Path | None,
        typer.Option(
            "--persona", exists=True, dir_okay=False, help="A file with the persona /suggest uses."
        ),
    ] = None,
    goal: Annotated[
        str | None, typer.Option("--goal", help="The goal /suggest speaks towards.")
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option("--max-turns", min=1, max=50, help="Bot replies at most.")
    ] = None,
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Talk to a bot yourself: each line is sent and the reply printed. /suggest shows what the
    simulated user would say (an empty line sends it), /quit (or end of input, or Ctrl-C)
    closes; Ctrl-C again stops waiting for the end."""
    body = _fields(
        bot_target=bot_target,
        bot_id=bot_id,
        goal=goal,
        max_turns=max_turns,
        persona=persona,
        bot_prompt=bot_prompt,
    )
    console = Console(highlight=False)
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        response = _request(client, "POST", "/v1/conversations", json=body)
        if response.status_code != 201:
            raise _fail(console, response)
        raise typer.Exit(Chat(client, response.json()["conversation_id"], console, ctrl_c).run())


@app.command()
def watch(
    simulation_id: Annotated[str, typer.Argument(help="The simulation to follow.")],
    after: Annotated[int, typer.Option("--after", help="Start after this seq.")] = 0,
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a simulation's events from the start (or after a seq), then live, to its end."""
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        raise typer.Exit(_follow(client, simulation_id, as_json, ctrl_c, after))


@app.command()
def get(
    simulation_id: Annotated[str, typer.Argument(help="The simulation to show.")],
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a simulation: status, transcript, error."""
    console = Console(highlight=False)
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        response = _request(client, "GET", f"/v1/simulations/{simulation_id}")
        ctrl_c.check()
    if response.status_code != 200:
        raise _fail(console, response)
    state = response.json()
    if as_json:
        print(json.dumps(state, ensure_ascii=False))
    else:
        TurnPrinter(console).summary(state)
    raise typer.Exit(EXIT_BY_STATUS.get(state["status"], 0))


@app.command()
def cancel(
    simulation_id: Annotated[str, typer.Argument(help="The simulation to cancel.")],
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel a simulation: it ends with `cancelled` and its partial transcript."""
    console = Console(highlight=False)
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        response = _request(client, "DELETE", f"/v1/simulations/{simulation_id}")
        ctrl_c.check()
    if response.status_code != 202:
        raise _fail(console, response)
    console.print(f"cancel requested for {simulation_id}")


@app.command()
def diff(
    first: Annotated[str, typer.Argument(help="A simulation id (e.g. the original).")],
    second: Annotated[str, typer.Argument(help="Another (e.g. its replay).")],
    gateway: GatewayOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Show two simulations' transcripts side by side, with their verdicts; differing lines are
    marked ≠. Exit 0 when the transcripts are the same, 1 when they differ."""
    console = Console(highlight=False)
    states = []
    with CtrlC().installed() as ctrl_c, _client(gateway, api_key) as client:
        for simulation_id in (first, second):
            response = _request(client, "GET", f"/v1/simulations/{simulation_id}")
            ctrl_c.check()
            if response.status_code != 200:
                raise _fail(console, response)
            states.append(response.json())
    raise typer.Exit(1 if show_diff(console, states[0], states[1]) else 0)


def _fields(**fields: Any) -> dict[str, Any]:
    """A request body of the options given (None: left out); a file's text for a Path."""
    return {
        name: value.read_text(encoding="utf-8") if isinstance(value, Path) else value
        for name, value in fields.items()
        if value is not None
    }


def read_script(path: Path) -> list[str | None]:
    """A script file: a YAML (or JSON) list whose items are messages or null."""
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not YAML: {exc}", param_hint="--script") from exc
    if not isinstance(items, list) or not all(i is None or isinstance(i, str) for i in items):
        raise typer.BadParameter(
            f"{path}: a script is a list of messages (strings) or null", param_hint="--script"
        )
    return items


def main() -> None:
    app()
