"""The CLI's HTTP client for the gateway: one per command, errors said plainly."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console

__all__ = ["connect", "fail", "request"]


def connect(gateway: str, api_key: str | None) -> httpx.Client:
    """A client for the gateway, with the bearer key when keys are on; no read timeout (the
    event streams stay open as long as a simulation runs)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=gateway, headers=headers, timeout=httpx.Timeout(30, read=None))


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
    except httpx.TransportError as exc:
        Console(stderr=True).print(f"[red]cannot reach the gateway at {client.base_url}[/red]")
        raise typer.Exit(3) from exc
