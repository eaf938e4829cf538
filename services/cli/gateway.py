"""The CLI's HTTP client for the gateway: one per command, errors said plainly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import typer
from httpx_sse import EventSource, connect_sse
from rich.console import Console

from services.cli.interrupts import CtrlC

__all__ = ["REQUEST_TIMEOUT", "STREAM_TIMEOUT", "connect", "event_stream", "fail", "request"]

REQUEST_TIMEOUT = httpx.Timeout(30, read=90)
"""A request's: 90 s for its answer (a suggestion may take the gateway's 60 s)."""
STREAM_TIMEOUT = httpx.Timeout(30, read=None)
"""An event stream's: no read timeout, it stays open as long as a simulation runs."""


def connect(gateway: str, api_key: str | None) -> httpx.Client:
    """A client for the gateway, with the bearer key when keys are on. Its event streams are
    opened with ``event_stream``."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=gateway, headers=headers, timeout=REQUEST_TIMEOUT)


def fail(console: Console, response: httpx.Response) -> typer.Exit:
    """Print the gateway's refusal; exit 3 for its errors (and 401), 1 for a refusal."""
    try:
        detail: Any = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    console.print(f"[red]{response.status_code}[/red] {detail}")
    return typer.Exit(3 if response.status_code >= 500 or response.status_code == 401 else 1)


def request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; an unreachable gateway exits 3."""
    try:
        return client.request(method, path, **kwargs)
    except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
        Console(stderr=True).print(f"[red]no answer from the gateway at {client.base_url}[/red]")
        raise typer.Exit(3) from exc
    except httpx.TransportError as exc:
        Console(stderr=True).print(f"[red]cannot reach the gateway at {client.base_url}[/red]")
        raise typer.Exit(3) from exc


@contextlib.contextmanager
def event_stream(
    client: httpx.Client, method: str, path: str, ctrl_c: CtrlC, **kwargs: Any
) -> Iterator[EventSource]:
    """One of the gateway's SSE responses, without a read timeout, read under ``ctrl_c`` (a
    press ends the read, then KeyboardInterrupt)."""
    with (
        connect_sse(client, method, path, timeout=STREAM_TIMEOUT, **kwargs) as source,
        ctrl_c.stream(source.response),
    ):
        yield source
