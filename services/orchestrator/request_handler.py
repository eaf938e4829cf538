"""One delivery of a request: read what earlier attempts recorded, then run or resume it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aio_pika.abc import AbstractIncomingMessage

from contracts.events import ErrorInfo, SimulationEvent
from contracts.ids import created_at_of
from contracts.names import OWNER_HEADER
from contracts.requests import SimulationRequest
from contracts.topology import REQUEST_DELIVERY_LIMIT
from contracts.work_class import work_class_of
from services.common.bot_targets import DEFAULT_TARGET
from services.common.event_log import EventLogReader
from services.orchestrator.endings import DEFAULT_STOP_PHRASE
from services.orchestrator.http_user import ConversationCommands, HttpUser
from services.orchestrator.limited_resources import llm_resource, target_resource
from services.orchestrator.permits.limits import ConcurrencyLimits
from services.orchestrator.permits.priority import ClassedGate, ClassedPool
from services.orchestrator.ports import BotPort, CallPermits, PermitGate, TranscriptLine
from services.orchestrator.pricing import Prices
from services.orchestrator.provenance import ProvenanceFacts, provenance_of
from services.orchestrator.rates.gate import LimitGate
from services.orchestrator.rates.limits import RateLimits
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.replay import Recording, ReplayNotFound, ReplaySource, replayed_request
from services.orchestrator.retry_policy import RetryPolicy
from services.orchestrator.simulation import EventSink, RunSignals, SimulationRun
from services.orchestrator.user_simulator import UserSimulator

__all__ = ["RequestHandler", "RunLimits", "RunPermits", "delivery_number", "owner_of"]

logger = logging.getLogger(__name__)


def delivery_number(delivery: AbstractIncomingMessage) -> int:
    """1 for the first delivery of a request; quorum queues count the returns before it."""
    count = (delivery.headers or {}).get("x-delivery-count", 0)
    return (int(count) if isinstance(count, int) else 0) + 1


def owner_of(delivery: AbstractIncomingMessage) -> str | None:
    """The owner the gateway recorded in the request's headers (None: keys off, or a third
    party's request)."""
    owner = (delivery.headers or {}).get(OWNER_HEADER)
    return owner if isinstance(owner, str) else None


@dataclass(frozen=True)
class RunLimits:
    deadline_s: float
    max_transcript_bytes: int
    stop_phrase: str = DEFAULT_STOP_PHRASE
    conversation_idle_s: float = 1_800.0
    conversation_deadline_s: float = 7_200.0
    prices: Prices = field(default_factory=dict)
    """CONVSIM_PRICES: what a model's tokens cost."""


@dataclass(frozen=True)
class RunPermits:
    """Which calls of a run take permits: those of a limited bot target, and the simulated
    user's LLM calls of a limited model (``user_model`` unless the request names one; None:
    the simulated user makes no LLM call). With ``by_class`` (the broker pool), a run takes
    them as its class of work: conversation, single simulation or suite member."""

    gate: PermitGate
    limits: ConcurrencyLimits
    user_model: str | None
    by_class: ClassedPool | None = None
    rates: RateLimits = field(default_factory=RateLimits)
    """Resources with an rpm (rates/): their calls go through the gate too."""

    def of(self, request: SimulationRequest) -> CallPermits | None:
        bot = self._limited(target_resource(request.bot_target or DEFAULT_TARGET))
        model = (request.llm.model if request.llm else None) or self.user_model
        user = None if model is None else self._limited(llm_resource(model))
        if bot is None and user is None:
            return None
        gate: PermitGate = self.gate
        if isinstance(self.gate, LimitGate):
            gate = self.gate.for_class(work_class_of(request))
        elif self.by_class is not None:
            gate = ClassedGate(self.by_class, work_class_of(request))
        return CallPermits(gate, bot=bot, user=user)

    def _limited(self, resource: str) -> str | None:
        limited = (
            self.limits.size_of(resource) is not None
            or self.rates.rpm_of(resource) is not None
            or self.rates.tpm_of(resource) is not None
        )
        return resource if limited else None


class RequestHandler:
    """Runs one delivery with the collaborators the composition root built (bootstrap.py)."""

    def __init__(
        self,
        *,
        log: EventLogReader,
        bot_for: Callable[[str], BotPort | None],
        user: UserSimulator,
        retry: RetryPolicy,
        limits: RunLimits,
        conversations: ConversationCommands | None = None,
        replays: ReplaySource | None = None,
        provenance: ProvenanceFacts | None = None,
        permits: RunPermits | None = None,
    ) -> None:
        self._permits = permits
        self._log = log
        self._replays = replays or ReplaySource(log)
        self._provenance = provenance
        self._conversations = conversations
        self._bot_for = bot_for
        self._user = user
        self._retry = retry
        self._limits = limits

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
        bot = self._bot_for(request.bot_target or DEFAULT_TARGET)
        replay, replay_error = await self._replay(request)
        runs = request if replay is None else replayed_request(request, replay)
        run = SimulationRun(
            request,
            bot=bot or _NoBot(),
            user=self._user,
            events=sink,
            deadline_s=(
                self._limits.conversation_deadline_s
                if request.is_conversation
                else self._limits.deadline_s
            ),
            recorded=recorded,
            attempt=attempt,
            signals=signals,
            retry=self._retry,
            owner=owner_of(delivery),
            max_transcript_bytes=self._limits.max_transcript_bytes,
            stop_phrase=self._limits.stop_phrase,
            person=self._person(request, signals),
            prices=self._limits.prices,
            replay=replay,
            provenance=(
                None if self._provenance is None else provenance_of(runs, self._provenance)
            ),
            permits=None if self._permits is None else self._permits.of(runs),
        )
        if replay_error is not None:
            return await run.give_up(ErrorInfo(code="replay_not_found", message=replay_error))
        if bot is None:
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

    async def _replay(self, request: SimulationRequest) -> tuple[Recording | None, str | None]:
        """A replay's recording, or why there is none. Every attempt reads it again (from
        this process's cache when it can): the original has ended, so it is the same."""
        if request.replay_of is None:
            return None, None
        try:
            return await self._replays.recording(request.replay_of), None
        except ReplayNotFound as missing:
            return None, str(missing)

    def _person(self, request: SimulationRequest, signals: RunSignals) -> HttpUser | None:
        """A conversation's user port: the messages sent over HTTP, from the control log."""
        if not request.is_conversation or self._conversations is None:
            return None
        return HttpUser(
            request.simulation_id,
            commands=self._conversations,
            signals=signals,
            idle_s=self._limits.conversation_idle_s,
        )

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


class _NoBot:
    """Stands in for a bot target that is not configured: the run gives up before any call."""

    opens_remotely = False

    async def open(self, request: SimulationRequest) -> None:
        raise RuntimeError("no bot is configured for this request")

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        raise RuntimeError("no bot is configured for this request")

    def ends_conversation(self, messages: Sequence[str]) -> bool:
        return False
