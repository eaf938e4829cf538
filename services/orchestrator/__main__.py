"""``python -m services.orchestrator``: run the orchestrator until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

import uvloop

from services.common.log_setup import configure_logging
from services.common.startup_heap import freeze_startup_heap
from services.orchestrator.app import create_app
from services.orchestrator.settings import OrchestratorSettings


def main() -> None:
    settings = OrchestratorSettings()
    configure_logging("orchestrator", settings.log_level, settings.log_format)
    app = create_app(settings)
    app.on_startup(freeze_startup_heap)  # after the lifespan built the parts, before consuming
    uvloop.run(app.run(log_level=logging.getLevelName(settings.log_level)))


if __name__ == "__main__":
    main()
