"""``python -m services.orchestrator``: run the orchestrator until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

import uvloop

from services.orchestrator.app import create_app
from services.orchestrator.settings import OrchestratorSettings


def main() -> None:
    settings = OrchestratorSettings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s orchestrator %(name)s: %(message)s",
    )
    # One line per HTTP call at INFO is noise at hundreds of calls a second; failures are
    # reported by the simulation's own events and logs.
    for chatty in ("httpx", "httpx2"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    uvloop.run(create_app(settings).run(log_level=logging.getLevelName(settings.log_level)))


if __name__ == "__main__":
    main()
