"""How every service logs: one JSON object per line (for log pipelines) or a human line (for a
terminal), with the service's name on every record; extra fields (``simulation_id``, ``seq``,
``turn_index`` ...) ride along."""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

__all__ = ["LogFormat", "configure_logging"]

LogFormat = Literal["auto", "json", "text"]


def configure_logging(service: str, level: str, log_format: LogFormat) -> None:
    """Configure the root logger; ``auto`` is text on a terminal and JSON otherwise."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP call at INFO is noise at hundreds of calls a second; failures are
    # reported by the simulation's own events and log lines.
    for chatty in ("httpx", "httpx2"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
