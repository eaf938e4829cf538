"""How every service logs: one JSON object per line (for log pipelines) or a human line (for a
terminal), with the service's name on every record; extra fields (``simulation_id``, ``seq``,
``turn_index`` ...) ride along. A traceback is bounded in length (``MAX_TRACEBACK_CHARS``): an
error deep in a chain of tasks (a lost connection ending hundreds of awaits) would otherwise
write a megabyte per line."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "MAX_TRACEBACK_CHARS",
    "LogFormat",
    "PathOnlyAccessLog",
    "bounded_traceback",
    "configure_logging",
]

LogFormat = Literal["auto", "json", "text"]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

MAX_TRACEBACK_CHARS = 32_000
"""The most of one record's traceback that is written: its start (where it was raised first)
and, three times as long, its end (the exception the record is about)."""


def bounded_traceback(text: str, limit: int = MAX_TRACEBACK_CHARS) -> str:
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    left_out = len(text) - head - tail
    return (
        f"{text[:head]}\n... {left_out} characters of this traceback left out ...\n{text[-tail:]}"
    )


class _BoundedTracebacks(logging.Formatter):
    """A formatter whose tracebacks are bounded: the text format as it is, and the JSON one
    below it (its own ``formatException`` gives a string: ``exc_info_as_array`` is unset)."""

    def formatException(self, ei: ExcInfo) -> str:
        return bounded_traceback(super().formatException(ei))


class _BoundedJsonFormatter(_BoundedTracebacks, JsonFormatter):
    pass


class PathOnlyAccessLog(logging.Filter):
    """Logs the path of an HTTP request without its query string: a query may hold a
    credential (a browser's EventSource sends its stream token as ``?access_token=``).

    uvicorn's access records carry ``(client, method, path with query, version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, _, _ = args[2].partition("?")
            record.args = (*args[:2], path, *args[3:])
        return True


def configure_logging(service: str, level: str, log_format: LogFormat) -> None:
    """Configure the root logger; ``auto`` is text on a terminal and JSON otherwise."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(
            _BoundedJsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(
            _BoundedTracebacks(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP call at INFO is noise at hundreds of calls a second; failures are
    # reported by the simulation's own events and log lines.
    for chatty in ("httpx", "httpx2"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(known, PathOnlyAccessLog) for known in access.filters):
        access.addFilter(PathOnlyAccessLog())
