"""Options every command that talks to the gateway takes."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DEFAULT_GATEWAY", "ApiKeyOption", "GatewayOption"]

DEFAULT_GATEWAY = "http://127.0.0.1:8000"

GatewayOption = Annotated[
    str,
    typer.Option("--gateway", envvar="CONVSIM_GATEWAY_URL", help="Base URL of the gateway."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="CONVSIM_API_KEY", help="Bearer key, when keys are on."),
]
