"""``python -m services.demo_bot``: serve the demo bot on CONVSIM_DEMO_BOT_HOST:PORT."""

from __future__ import annotations

import uvicorn

from services.demo_bot.app import create_app
from services.demo_bot.settings import DemoBotSettings


def main() -> None:
    settings = DemoBotSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
