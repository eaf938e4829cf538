"""``python -m services.gateway``: serve the gateway on CONVSIM_GATEWAY_HOST:PORT."""

from __future__ import annotations

import logging

import uvicorn

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s gateway %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
