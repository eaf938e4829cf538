"""``python -m services.orchestrator``: run the orchestrator until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from services.orchestrator.app import create_app
from services.orchestrator.settings import OrchestratorSettings


def main() -> None:
    settings = OrchestratorSettings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s orchestrator %(name)s: %(message)s",
    )
    asyncio.run(create_app(settings).run(log_level=logging.getLevelName(settings.log_level)))


if __name__ == "__main__":
    main()
