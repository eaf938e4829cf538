"""``convsim diff A B``: two simulations' transcripts side by side, with their verdicts.

Lines are paired by their place in the transcript; a pair that differs is marked, so a replay
against a new bot build shows at a glance where the bot answered differently.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["diff_table", "show_diff"]

_VERDICT_STYLES = {"pass": "green", "fail": "red", "unjudged": "yellow"}


def show_diff(console: Console, a: dict[str, Any], b: dict[str, Any]) -> int:
    """Print the two simulations side by side; how many transcript lines differ."""
    table, differing = diff_table(a, b)
    console.print(table)
    console.print(
        f"{differing} of {max(len(a.get('turns', [])), len(b.get('turns', [])))} lines differ",
        highlight=False,
    )
    return differing


def diff_table(a: dict[str, Any], b: dict[str, Any]) -> tuple[Table, int]:
    table = Table(show_lines=True, expand=True)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column(_header(a), ratio=1)
    table.add_column(_header(b), ratio=1)
    differing = 0
    for number, (left, right) in enumerate(
        zip_longest(a.get("turns", []), b.get("turns", [])), start=1
    ):
        same = _line(left) == _line(right)
        differing += not same
        table.add_row(
            Text(str(number) if same else f"≠ {number}", style="" if same else "bold yellow"),
            _cell(left, same),
            _cell(right, same),
        )
    table.add_row("", _judgement(a), _judgement(b))
    return table, differing


def _line(turn: dict[str, Any] | None) -> tuple[str, str] | None:
    return None if turn is None else (turn["role"], turn["content"])


def _header(simulation: dict[str, Any]) -> str:
    verdict = simulation.get("verdict")
    shown = (
        f"[{_VERDICT_STYLES.get(verdict, 'white')}]{verdict}[/]"
        if verdict
        else "[dim]no verdict[/]"
    )
    stop = f" ({simulation['stop_reason']})" if simulation.get("stop_reason") else ""
    return f"{simulation['simulation_id']}\n{simulation['status']}{stop} · {shown}"


def _cell(turn: dict[str, Any] | None, same: bool) -> RenderableType:
    if turn is None:
        return Text("—", style="dim")
    role = turn["role"]
    text = Text()
    text.append(f"{role}: ", style="bold cyan" if role == "user" else "bold magenta")
    text.append(turn["content"], style="" if same else "yellow")
    if role == "bot" and turn.get("latency_ms"):
        text.append(f" ({turn['latency_ms']} ms)", style="dim")
    return text


def _judgement(simulation: dict[str, Any]) -> RenderableType:
    """The verdict and what failed, under each transcript."""
    judgement = simulation.get("judgement")
    if not judgement:
        error = simulation.get("error")
        if error:
            return Text(f"failed ({error['code']}): {error['message']}", style="red")
        return Text("not judged", style="dim")
    lines: list[RenderableType] = []
    score = judgement.get("score")
    verdict = judgement["verdict"]
    lines.append(
        Text.from_markup(
            f"verdict [{_VERDICT_STYLES.get(verdict, 'white')}]{verdict}[/]"
            + (f", score {score * 100:.0f}%" if score is not None else "")
        )
    )
    for criterion in judgement.get("criteria", []):
        mark = {True: "✓", False: "✗", None: "?"}[criterion["passed"]]
        lines.append(
            Text.from_markup(
                f"{mark} {escape(criterion['criterion'])} [dim]{escape(criterion['reasoning'])}[/]"
            )
        )
    for assertion in judgement.get("assertions", []):
        where = f" (bot reply {assertion['turn']})" if assertion.get("turn") else ""
        lines.append(Text(f"{'✓' if assertion['passed'] else '✗'} {assertion['assertion']}{where}"))
    return Group(*lines)
