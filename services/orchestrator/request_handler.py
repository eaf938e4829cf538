"""One delivery of a request: read what earlier attempts recorded, then run or resume it."""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from contracts.events import ErrorInfo, SimulationEvent
from contracts.ids import created_at_of
from contracts.requests import SimulationRequest
from contracts.topology import REQUEST_DELIVERY_LIMIT
from services.common.event_log import EventLogReader
from services.orchestrator.bot_api import BotApiClient
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.retry_policy import RetryPolicy
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventSink, RunSignals, SimulationRun
from services.orchestrator.user_simulator import UserSimulator

__all__ = ["RequestHandler", "delivery_number"]

logger = logging.getLogger(__name__)


def delivery_number(delivery: AbstractIncomingMessage) -> int:
    """1 for the first delivery of a request; quorum queues count the returns before it."""
    count = (delivery.headers or {}).get("x-delivery-count", 0)
    return (int(count) if isinstance(count, int) else 0) + 1


class RequestHandler:
    def __init__(
        self,
        settings: OrchestratorSettings,
        *,
        connection: AbstractRobustConnection,
        bot_http: httpx.AsyncClient,
        user: UserSimulator,
    ) -> None:
        self._settings = settings
        self._log = EventLogReader(
            connection, timeout_s=settings.log_read_timeout_s, prefetch=settings.log_read_prefetch
        )
        self._bot_http = bot_http
        self._user = user
        self._retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
        )

    async def run(
        self,
        request: SimulationRequest,
        delivery: AbstractIncomingMessage,
        sink: EventSink,
        signals: RunSignals,
    ) -> SimulationEvent | None:
        """The terminal event, or None when the log already had one (a duplicate delivery)."""
        number = delivery_number(delivery)
        recorded = await self._recorded(request, delivery, number)
        if recorded.terminal is not None:
            logger.info(
                "simulation %s already ended (%s): delivery %d publishes nothing",
                request.simulation_id,
                recorded.terminal.type,
                number,
            )
            return None
        attempt = max(number, recorded.last_attempt + 1)
        bot_url = self._settings.bot_url_for(request.bot_target)
        run = SimulationRun(
            request,
            bot=BotApiClient(
                self._bot_http,
                base_url=bot_url or "",
                max_reply_bytes=self._settings.max_bot_reply_bytes,
            ),
            user=self._user,
            events=sink,
            deadline_s=self._settings.simulation_deadline_s,
            recorded=recorded,
            attempt=attempt,
            signals=signals,
            retry=self._retry,
        )
        if bot_url is None:
            return await run.give_up(
                ErrorInfo(
                    code="internal",
                    message=f"no bot target named {request.bot_target!r} is configured",
                )
            )
        if number >= REQUEST_DELIVERY_LIMIT:
            # The broker dead-letters after this delivery: end it visibly rather than silently.
            return await run.give_up(
                ErrorInfo(
                    code="too_many_interruptions",
                    message=f"the simulation was interrupted {number - 1} times (crashes, "
                    "restarts or lost connections); it is not retried again",
                )
            )
        if number > 1:
            logger.info(
                "simulation %s: attempt %d resumes after seq %d (%d lines recorded)",
                request.simulation_id,
                attempt,
                recorded.last_seq,
                len(recorded.turns),
            )
        return await run.run()

    async def _recorded(
        self, request: SimulationRequest, delivery: AbstractIncomingMessage, number: int
    ) -> RecordedRun:
        if number == 1 and not delivery.redelivered:
            return RecordedRun.fresh(request)  # nothing can be in the log yet
        since = created_at_of(request.simulation_id) or delivery.timestamp
        if since is None:
            since = datetime.fromtimestamp(0).astimezone()
        events = await self._log.read(request.simulation_id, since)
        return RecordedRun.from_log(request, events)
