"""``python -m services.gateway``: serve the gateway on CONVSIM_GATEWAY_HOST:PORT."""

from __future__ import annotations

import uvicorn

from services.common.log_setup import configure_logging
from services.common.startup_heap import freeze_startup_heap
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings, on_ready=freeze_startup_heap),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        log_config=None,  # uvicorn's records go through the service's own handler
    )


if __name__ == "__main__":
    main()
