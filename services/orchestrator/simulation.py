"""The turn loop of one simulation: pure logic over three ports (bot, simulated user, events).

It knows nothing of RabbitMQ or HTTP: the app gives it real adapters, unit tests give it fakes.
A run resumes what an earlier attempt recorded: the steps already in the event log are taken
from it (no call, no event), and the loop carries on from the first step that is not.

The simulation's deadline bounds the remote calls and the pauses between their attempts, never
a publish: a publish cut between its frame and its confirm may be recorded or not, and
publishing ``failed`` at the same seq would then be dropped by every reader as a duplicate. A
publish that fails is "unknown" (EventPublishError): the request goes back to the queue and the
next attempt resumes from what the log holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from tenacity import RetryCallState

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    ErrorInfo,
    FailedEvent,
    Provenance,
    RetryingEvent,
    SimulationEvent,
    StartedEvent,
    StopReason,
    TurnEvent,
    TurnRole,
    TurnUsage,
    WaitingEvent,
)
from contracts.requests import SimulationRequest
from contracts.transcript import format_transcript, speaker_role
from services.orchestrator.endings import (
    DEFAULT_STOP_PHRASE,
    MAX_STOP_ONLY_REASKS,
    UserMove,
    may_end,
    read_user_message,
    user_instructions,
)
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.person import ConversationEnded, PersonPort
from services.orchestrator.ports import BotPort, CallPermits, Permit, RateGate, unmetered
from services.orchestrator.pricing import Prices, usage_summary
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.replay import Recording, recording_position, replayed_request
from services.orchestrator.retry_policy import RetryPolicy
from services.orchestrator.script import scripted_message
from services.orchestrator.user_simulator import TranscriptLine, UserSimulator

__all__ = [
    "DEFAULT_MAX_TRANSCRIPT_BYTES",
    "BotPort",
    "EventPublishError",
    "EventSink",
    "HandBack",
    "RunSignals",
    "SimulationRun",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_EventModel = (
    StartedEvent
    | TurnEvent
    | RetryingEvent
    | WaitingEvent
    | CompletedEvent
    | FailedEvent
    | CancelledEvent
)

PERMIT_GRACE_S = 0.1
"""A wait for a permit longer than this is announced with a ``waiting`` event."""


class EventPublishError(Exception):
    """An event could not be recorded: the run stops without a terminal event, to be redone."""


class HandBack(Exception):
    """The run stops without a terminal event so that another attempt resumes it from the log."""


class RunSignals:
    """How the outside world steers a run.

    ``cancel()``: end with ``cancelled`` now (an in-flight call is abandoned).
    ``stop_for_budget()``: end with ``completed`` / ``budget_exceeded`` before the next call
    (an in-flight call is finished and recorded first).
    ``hand_back_soon()``: stop at the next step boundary, so nothing is repeated (lease end,
    shutdown). ``hand_back_now()``: stop even mid-call (the grace period is over).
    """

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.budget_spent = False
        """Its suite's budget is spent (a ``stop`` command): no further call is made."""
        self.budget_stop = asyncio.Event()
        """Set with ``budget_spent``: a wait for a permit ends on it."""
        self.interrupted = asyncio.Event()
        self.hand_back_requested = False
        self.hand_back_wanted = asyncio.Event()
        """Set with ``hand_back_requested``: a wait that is no remote call (a conversation
        waiting for its next message) stops on it."""
        self._calling: asyncio.Task[Any] | None = None
        """The task awaiting a remote call right now, if any: an interruption cancels it."""
        self._abandoning = False

    def cancel(self) -> None:
        self.cancelled.set()
        self._interrupt()

    def stop_for_budget(self) -> None:
        self.budget_spent = True
        self.budget_stop.set()

    def hand_back_soon(self) -> None:
        self.hand_back_requested = True
        self.hand_back_wanted.set()

    def hand_back_now(self) -> None:
        self.hand_back_soon()
        self._interrupt()

    def _interrupt(self) -> None:
        self.interrupted.set()
        if self._calling is not None and not self._abandoning:
            self._abandoning = True
            self._calling.cancel()

    @contextlib.contextmanager
    def abandonable(self) -> Iterator[None]:
        """While inside, an interruption cancels the current task and the block leaves with
        HandBack (the caller tells which signal it was). It costs next to nothing per call,
        unlike a watcher task and ``asyncio.wait`` per call (0.75 ms of CPU per simulation)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - runs are always tasks
            raise RuntimeError("a run must be awaited in a task")
        self._calling, self._abandoning = task, False
        try:
            yield
        except asyncio.CancelledError:
            if not self._abandoning:
                raise  # someone else cancelled the run: not ours to take back
        finally:
            self._calling = None
        if self._abandoning:  # also when the call swallowed the cancellation
            task.uncancel()
            raise HandBack


class _Cancelled(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


class _BudgetExceeded(Exception):
    """A budget is reached: the run completes with ``budget_exceeded`` and what it has."""


class _TranscriptTooLarge(Exception):
    pass


DEFAULT_MAX_TRANSCRIPT_BYTES = 8 * 1_048_576


def _line_bytes(role: TurnRole, content: str) -> int:
    """What one line adds to a terminal event's ``transcript``, as encoded JSON (escapes
    included): ``Bot: <content>`` and its newline."""
    return len(json.dumps(content, ensure_ascii=False).encode()) - 2 + len(role) + 4


class EventSink(Protocol):
    async def publish(self, event: SimulationEvent) -> None:
        """Return once the event is safely recorded (broker-confirmed)."""
        ...


class SimulationRun:
    """Runs one requested simulation to its terminal event, resuming what is recorded."""

    def __init__(
        self,
        request: SimulationRequest,
        *,
        bot: BotPort,
        user: UserSimulator,
        events: EventSink,
        deadline_s: float,
        recorded: RecordedRun | None = None,
        attempt: int = 1,
        signals: RunSignals | None = None,
        retry: RetryPolicy | None = None,
        owner: str | None = None,
        max_transcript_bytes: int = DEFAULT_MAX_TRANSCRIPT_BYTES,
        stop_phrase: str = DEFAULT_STOP_PHRASE,
        person: PersonPort | None = None,
        prices: Prices | None = None,
        replay: Recording | None = None,
        provenance: Provenance | None = None,
        permits: CallPermits | None = None,
    ) -> None:
        recorded = recorded or RecordedRun.fresh(request)
        self._permits = permits
        """Limited targets: each call to them holds a permit while it runs."""
        self._submitted = request
        """The request as it was sent: what seq 2 carries."""
        self._recording = replay
        """A replay (``replay_of``): the original's user side, whose lines are sent again."""
        if replay is not None:
            request = replayed_request(request, replay)
        self._request = request
        """The request the loop runs (for a replay, with the original's user side)."""
        self._provenance = provenance
        self._bot = bot
        self._user = user
        self._events = events
        self._deadline_s = deadline_s
        self._recorded = recorded
        self._attempt = attempt
        self._signals = signals or RunSignals()
        self._retry = retry or RetryPolicy()
        self._next_seq = recorded.last_seq + 1
        self._replay: list[TurnEvent] = recorded.turns
        self._turns: list[TurnEvent] = list(recorded.turns)
        """Every turn in the log, recorded or published by this attempt: the usage totals."""
        self._prices: Prices = prices or {}
        self._lines: list[TranscriptLine] = []
        self._transcript_bytes = 0
        self._max_transcript_bytes = max_transcript_bytes
        self._owner = owner
        self._bot_replies = 0
        self._stop_phrase = stop_phrase
        self._instructions = user_instructions(request.persona, request.goal, stop_phrase)
        """The simulated user's system message: persona, goal, and how to end the talk."""
        self._user_ends = False
        """The last user line carried the stop phrase: the bot's answer to it is the last."""
        self._stop_reason: StopReason = "max_turns"
        self._deadline = float("inf")
        """The loop time at which remote calls stop (set when the run starts)."""
        self._person = person
        """A conversation a person steers: the user turns are their messages."""
        self._last_activity = recorded.events[-1].timestamp
        """The time of the latest event: a conversation's idle time counts from it."""

    @property
    def conversation_id(self) -> str:
        # The simulation id: stable across redeliveries, so a resumed run talks to the same
        # conversation of the bot.
        return self._request.simulation_id

    async def run(self) -> SimulationEvent:
        """Publish what is not recorded yet, up to the terminal event, which it returns.

        Raises HandBack or EventPublishError when it stops without a terminal event.
        """
        started = self._recorded.started
        started_at = started.timestamp if started else datetime.now(UTC)
        remaining_s = self._deadline_s - (datetime.now(UTC) - started_at).total_seconds()
        self._deadline = asyncio.get_running_loop().time() + max(remaining_s, 0)
        try:
            if started is None:
                await self._open_conversation()
            await self._converse()
        except ConversationEnded as ended:
            self._stop_reason = ended.reason
        except _BudgetExceeded:
            self._stop_reason = "budget_exceeded"
        except _Cancelled:
            return await self._emit(CancelledEvent, transcript=self._transcript())
        except SimulationFailure as failure:
            return await self._fail(failure.to_error_info())
        except (EventPublishError, HandBack):
            raise
        except _TranscriptTooLarge:
            return await self._fail(
                ErrorInfo(
                    code="transcript_too_large",
                    message=f"the transcript would exceed {self._max_transcript_bytes} bytes "
                    f"(CONVSIM_MAX_TRANSCRIPT_BYTES) after {self._bot_replies} bot replies",
                )
            )
        except _DeadlineExceeded:
            return await self._fail(
                ErrorInfo(
                    code="deadline_exceeded",
                    message=f"the simulation ran past its deadline of {self._deadline_s:g} s "
                    f"after {self._bot_replies} bot replies",
                )
            )
        except Exception as exc:
            logger.exception("simulation %s failed unexpectedly", self.conversation_id)
            return await self._fail(
                ErrorInfo(code="internal", message=f"internal error ({type(exc).__name__})")
            )
        return await self._emit(
            CompletedEvent,
            stop_reason=self._stop_reason,
            transcript=self._transcript(),
            turn_count=self._bot_replies,
            duration_ms=max(0, round((datetime.now(UTC) - started_at).total_seconds() * 1000)),
            usage=usage_summary(self._turns, self._prices),
        )

    async def give_up(self, error: ErrorInfo) -> SimulationEvent:
        """End with ``failed`` and the transcript recorded so far, without calling anyone."""
        self._lines = [(turn.role, turn.content) for turn in self._replay]
        self._transcript_bytes = sum(_line_bytes(role, content) for role, content in self._lines)
        return await self._fail(error)

    async def _open_conversation(self) -> None:
        permit = self._bot_permit if self._bot.opens_remotely else None  # no call: no permit
        await self._call("initConversation", lambda: self._bot.open(self._request), permit)
        await self._emit(
            StartedEvent,
            conversation_id=self.conversation_id,
            user_simulator=self._user.kind,
            goal=self._request.goal,
            provenance=self._provenance,
        )

    async def _converse(self) -> None:
        request = self._request
        for earlier in request.history:
            await self._turn(speaker_role(earlier.role), earlier.content, 0, from_history=True)
        message: str | None = request.opening_message()
        if not request.has_fixed_opening():
            message = await self._user_message(1)  # the script (or the simulated user) opens
        elif not request.opening_is_in_history():
            await self._turn("user", request.opening_message(), 0)
        for turn in range(1, request.max_turns + 1):
            if message is None:  # the user ended it with nothing left to send
                self._stop_reason = "user_ended"
                return
            self._check_budget()  # the user line's call may have reached it
            reply = await self._bot_reply(f"bot reply {turn}", message)
            self._bot_replies += 1
            if self._user_ends:
                self._stop_reason = "user_ended"
                return
            if self._bot.ends_conversation(reply) and may_end(self._bot_replies, request.min_turns):
                self._stop_reason = "bot_ended"
                return
            if turn == request.max_turns:
                return
            self._check_budget()
            message = await self._user_message(turn + 1)

    async def _user_message(self, number: int) -> str | None:
        """User message ``number`` (1 = the first sent): from the record, the script or the
        simulated user, with the stop phrase read (endings.py). None: the user ended the
        conversation with nothing left to send."""
        recorded = self._recorded_turn("user")
        if recorded is not None:
            self._user_ends = recorded.ends_conversation
            return recorded.content
        if self._person is not None:
            return await self._person_message(number, self._person)
        diverged = False
        if self._recording is not None:
            position = recording_position(self._request, number)
            replayed = self._replayed_move(position)
            if replayed is not None:
                return await self._user_move(replayed, 0, replayed=bool(replayed.text))
            diverged = position == len(self._recording.lines)
        fixed = scripted_message(self._request, number)
        if fixed is not None and (move := self._read_user(fixed)) is not None:
            return await self._user_move(move, 0)
        # A fixed message that was only the stop phrase before min_turns falls to the user.
        request = self._request
        usage: TurnUsage | None = None  # a re-ask's tokens count on the line it ends with
        for _ in range(MAX_STOP_ONLY_REASKS + 1):
            answer, latency_ms = await self._timed(
                f"user message {number}",
                lambda: self._user.next_message(
                    self._instructions, list(self._lines), request.llm, seed=request.seed
                ),
                None if self._permits is None else self._permits.user,
            )
            content, call_usage = unmetered(answer)
            usage = _added(usage, call_usage)
            if (move := self._read_user(content)) is not None:
                return await self._user_move(move, latency_ms, usage, replay_diverged=diverged)
        raise SimulationFailure(
            "llm_error",
            f"the simulated user said only the stop phrase {MAX_STOP_ONLY_REASKS + 1} times "
            f"for user message {number}, before min_turns ({request.min_turns}) bot replies",
        )

    def _replayed_move(self, position: int) -> UserMove | None:
        """The recording's move at ``position``: its line, sent as it is (ending the talk as
        it did, when the run may end there), or the original's ending with nothing left to
        send. None: past the recording, the simulated user speaks."""
        recording = self._recording
        if recording is None:  # pragma: no cover - only called for a replay
            return None
        line = recording.line(position)
        if line is not None:
            ends = line.ends and may_end(self._bot_replies + 1, self._request.min_turns)
            return UserMove(line.content, ends=ends)
        if (
            position == len(recording.lines)
            and recording.user_ended_after
            and may_end(self._bot_replies, self._request.min_turns)
        ):
            return UserMove("", ends=True)
        return None

    async def _person_message(self, number: int, person: PersonPort) -> str | None:
        """The person's next message (a conversation): the stop phrase ends it at any turn."""
        index = number - 1 if self._request.has_fixed_opening() else number
        content, latency_ms = await self._timed(
            f"user message {number}", lambda: person.message(index, self._last_activity)
        )
        move = read_user_message(content, self._stop_phrase, bot_replies=0, min_turns=0)
        return await self._user_move(move or UserMove(content), latency_ms)

    def _read_user(self, content: str) -> UserMove | None:
        return read_user_message(
            content,
            self._stop_phrase,
            bot_replies=self._bot_replies,
            min_turns=self._request.min_turns,
        )

    async def _user_move(
        self,
        move: UserMove,
        latency_ms: int,
        usage: TurnUsage | None = None,
        *,
        replayed: bool = False,
        replay_diverged: bool = False,
    ) -> str | None:
        self._user_ends = move.ends
        if not move.text:
            return None
        extra: dict[str, Any] = {} if usage is None else {"usage": usage}
        if replayed:
            extra["replayed"] = True
        if replay_diverged:
            extra["replay_diverged"] = True
        await self._turn("user", move.text, latency_ms, ends_conversation=move.ends, **extra)
        return move.text

    async def _bot_reply(self, what: str, message: str) -> list[str]:
        """The bot's reply to ``message``, one transcript line per message: from the record
        if it is there. A reply a crash cut short (its first parts recorded, not all) is
        finished from its first part's ``following``, without asking the bot again."""
        recorded = self._recorded_reply()
        if recorded is not None:
            reply, done = recorded
            await self._reply_turns(reply, done + 1, 0)
            return reply
        lines = self._lines
        earlier = lines[:-1] if lines and lines[-1][0] == "user" else lines
        answer, latency_ms = await self._timed(
            what, partial(self._bot.reply, self._request, message, list(earlier)), self._bot_permit
        )
        reply, usage = unmetered(answer)
        await self._reply_turns(reply, 1, latency_ms, usage)
        return reply

    def _recorded_reply(self) -> tuple[list[str], int] | None:
        """The recorded reply at this point and how many of its messages are recorded."""
        first_index = len(self._lines)
        first = self._recorded_line("bot")
        if first is None:
            return None
        head = self._replay[first_index]
        if head.parts is None:
            return [first], 1
        done = 1
        while done < head.parts and self._recorded_line("bot") is not None:
            done += 1
        return [first, *(head.following or [])], done

    async def _reply_turns(
        self, reply: list[str], first_part: int, latency_ms: int, usage: TurnUsage | None = None
    ) -> None:
        """Publish the reply's messages from ``first_part`` on, one ``turn`` each (the call's
        ``usage`` on the first)."""
        parts = len(reply)
        for part in range(first_part, parts + 1):
            extra: dict[str, Any] = {}
            if part == 1 and usage is not None:
                extra["usage"] = usage
            if parts > 1:
                extra = {"part": part, "parts": parts}
                if part == 1:
                    extra["following"] = reply[1:]
            await self._turn("bot", reply[part - 1], latency_ms if part == 1 else 0, **extra)

    def _recorded_line(self, role: TurnRole) -> str | None:
        recorded = self._recorded_turn(role)
        return None if recorded is None else recorded.content

    def _recorded_turn(self, role: TurnRole) -> TurnEvent | None:
        index = len(self._lines)
        if index >= len(self._replay):
            return None
        recorded = self._replay[index]
        if recorded.role != role:
            raise RuntimeError(f"the log has a {recorded.role} line at {index}, expected {role}")
        self._append_line(recorded.role, recorded.content)
        return recorded

    @property
    def _bot_permit(self) -> str | None:
        return None if self._permits is None else self._permits.bot

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], resource: str | None = None
    ) -> T:
        result, _ = await self._timed(what, call, resource)
        return result

    async def _timed(
        self, what: str, call: Callable[[], Awaitable[T]], resource: str | None = None
    ) -> tuple[T, int]:
        """Make the call, retried by the policy; every retry is announced with ``retrying``.
        A call to a limited ``resource`` holds a permit while it runs (each attempt its own).

        The first attempt is made directly: the retry loop (tenacity) is only built once a call
        has failed, which keeps its cost (about 0.25 ms of CPU per call) off the usual path."""
        self._check_signals()
        try:
            return await self._try_call(what, call, resource)
        except SimulationFailure as failure:
            return await self._retried(what, call, failure, resource)

    async def _try_call(
        self, what: str, call: Callable[[], Awaitable[T]], resource: str | None
    ) -> tuple[T, int]:
        """One attempt of a call, with its permit. A 429 from a rate-limited resource is no
        failed attempt: it slows the resource down for every replica (rates/), and the call
        waits for a token again, like any call (bounded by the deadline and a cancel)."""
        while True:
            permit = await self._permit(what, resource)
            started = time.monotonic()
            try:
                result = await self._permitted(permit, call)
            except SimulationFailure as failure:
                gate = self._rate_gate(resource)
                if gate is None or resource is None or not failure.throttled:
                    raise
                await gate.throttled(resource, failure.retry_after_s)
                continue
            gate = self._rate_gate(resource)
            usage = unmetered(result)[1]
            if gate is not None and resource is not None and usage is not None:
                gate.used(resource, usage.prompt_tokens + usage.completion_tokens)
            return result, _ms_since(started)

    def _rate_gate(self, resource: str | None) -> RateGate | None:
        gate = None if self._permits is None else self._permits.gate
        if resource is None or not isinstance(gate, RateGate) or not gate.rate_limited(resource):
            return None
        return gate

    async def _permitted(self, permit: Permit | None, call: Callable[[], Awaitable[T]]) -> T:
        """One attempt of a call, giving its permit back once it is over (however it ends)."""
        try:
            return await self._interruptible(call())
        finally:
            if permit is not None:
                await permit.release()

    async def _permit(self, what: str, resource: str | None) -> Permit | None:
        """A permit of ``resource`` (None: not limited). A wait longer than PERMIT_GRACE_S is
        announced with ``waiting``; the wait ends early on a cancel or the deadline, like a
        call, and also on a hand-back at the next step boundary (it is no call: nothing is
        sent meanwhile)."""
        if resource is None or self._permits is None:
            return None
        taking = asyncio.ensure_future(self._permits.gate.acquire(resource))
        try:
            if not await self._interruptible(_done_within(taking, PERMIT_GRACE_S)):
                gate = self._permits.gate
                await self._emit(
                    WaitingEvent,
                    reason=(
                        gate.waiting_reason(resource)
                        if isinstance(gate, RateGate)
                        else "target_busy"
                    ),
                    target=resource,
                    index=len(self._lines),
                    step=what,
                )
                await self._interruptible(self._until_permit(taking))
            permit = taking.result()
            if self._signals.budget_spent:  # the stop came while it waited: no call
                raise _BudgetExceeded
            return permit
        except BaseException:
            await _give_back(taking)
            raise

    async def _until_permit(self, taking: asyncio.Future[Permit]) -> None:
        """Wait for the permit; a hand-back or a budget stop ends the wait too (no call is cut
        short by them)."""
        hand_back: asyncio.Future[Any] = asyncio.ensure_future(
            self._signals.hand_back_wanted.wait()
        )
        budget: asyncio.Future[Any] = asyncio.ensure_future(self._signals.budget_stop.wait())
        waits: set[asyncio.Future[Any]] = {taking, hand_back, budget}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hand_back.cancel()
            budget.cancel()
        if not taking.done():
            if self._signals.budget_spent:
                raise _BudgetExceeded
            raise HandBack

    async def _retried(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        first_failure: SimulationFailure,
        resource: str | None = None,
    ) -> tuple[T, int]:
        """Carry on after a failed first attempt, as the policy says: tenacity's attempt 1 is
        the one already made (it re-raises its failure), so its counting and backoff hold."""
        tries = 1
        try:
            async for attempt in self._retry.retrying(
                before_sleep=partial(self._announce_retry, what), sleep=self._pause
            ):
                with attempt:
                    tries = attempt.retry_state.attempt_number
                    if tries == 1:
                        raise first_failure
                    answer = await self._try_call(what, call, resource)
        except SimulationFailure as failure:
            where = what if tries == 1 else f"{what} (after {tries} attempts)"
            raise failure.with_context(where) from failure
        return answer

    async def _announce_retry(self, what: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, SimulationFailure):  # pragma: no cover - only those retry
            return
        await self._emit(
            RetryingEvent,
            index=len(self._lines),
            step=what,
            failed_attempt=state.attempt_number,
            max_attempts=self._retry.max_attempts,
            error=error.to_error_info(),
            retry_in_ms=round((state.upcoming_sleep or 0) * 1000),
        )

    async def _pause(self, seconds: float) -> None:
        """The backoff before a retry; a cancel or an urgent hand-back cuts it short."""
        await self._within_deadline(self._until_interrupted(seconds))
        self._check_signals()

    async def _until_interrupted(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._signals.interrupted.wait(), seconds)

    def _check_signals(self) -> None:
        """At a step boundary: stop here if asked to."""
        if self._signals.cancelled.is_set():
            raise _Cancelled
        if self._signals.budget_spent:
            raise _BudgetExceeded
        if self._signals.hand_back_requested:
            raise HandBack

    async def _interruptible(self, call: Awaitable[T]) -> T:
        """Await a remote call; abandon it when the run is cancelled or handed back now."""
        try:
            with self._signals.abandonable():
                return await self._within_deadline(call)
        except HandBack:
            self._check_signals()  # cancelled: end with ``cancelled``
            raise

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        """Await a remote call (or a pause) no later than the simulation's deadline."""
        if asyncio.get_running_loop().time() >= self._deadline:
            if inspect.iscoroutine(call):
                call.close()  # never started
            raise _DeadlineExceeded
        timeout = asyncio.timeout_at(self._deadline)
        try:
            async with timeout:
                return await call
        except TimeoutError:
            if timeout.expired():
                raise _DeadlineExceeded from None
            raise

    async def _turn(
        self,
        role: TurnRole,
        content: str,
        latency_ms: int,
        *,
        from_history: bool = False,
        ends_conversation: bool = False,
        **parts: Any,
    ) -> None:
        if self._recorded_line(role) is not None:
            return
        if self._transcript_bytes + _line_bytes(role, content) > self._max_transcript_bytes:
            raise _TranscriptTooLarge
        await self._emit(
            TurnEvent,
            index=len(self._lines),
            role=role,
            content=content,
            latency_ms=latency_ms,
            from_history=from_history,
            ends_conversation=ends_conversation,
            **parts,
        )
        self._append_line(role, content)

    def _check_budget(self) -> None:
        """After a whole line (a user line, or every message of a bot reply): stop when the
        LLM usage of the lines so far reaches the request's budget. The lines so far, not every
        recorded one: a resumed run stops where its first attempt did."""
        request = self._request
        if request.max_tokens_total is None and request.max_cost_usd is None:
            return
        lines = len(self._lines)
        used = usage_summary((t for t in self._turns if t.index < lines), self._prices).total
        tokens = used.prompt_tokens + used.completion_tokens
        if request.max_tokens_total is not None and tokens >= request.max_tokens_total:
            raise _BudgetExceeded
        cost = used.cost_usd
        if request.max_cost_usd is not None and cost is not None and cost >= request.max_cost_usd:
            raise _BudgetExceeded

    def _append_line(self, role: TurnRole, content: str) -> None:
        self._lines.append((role, content))
        self._transcript_bytes += _line_bytes(role, content)

    async def _fail(self, error: ErrorInfo) -> SimulationEvent:
        return await self._emit(FailedEvent, error=error, transcript=self._transcript())

    def _transcript(self) -> str:
        return format_transcript(self._lines)

    async def _emit(self, event_type: type[_EventModel], **fields: Any) -> SimulationEvent:
        if self._next_seq == 2 and "request" in event_type.model_fields:
            # The first event after ``queued``: it can stand in for a ``queued`` never published.
            fields.update(request=self._submitted, owner=self._owner)
        event = event_type(
            simulation_id=self._request.simulation_id,
            seq=self._next_seq,
            attempt=self._attempt,
            **fields,
        )
        try:
            await self._events.publish(event)
        except Exception as exc:
            raise EventPublishError(f"could not publish {event.type} seq {event.seq}") from exc
        self._next_seq += 1
        self._last_activity = event.timestamp
        if isinstance(event, TurnEvent):
            self._turns.append(event)
        return event


async def _done_within(task: asyncio.Future[Any], seconds: float) -> bool:
    """Whether ``task`` is done within ``seconds`` (it goes on either way)."""
    await asyncio.wait({task}, timeout=seconds)
    return task.done()


async def _give_back(taking: asyncio.Future[Permit]) -> None:
    """Stop waiting for a permit; give it back if it came already."""
    if not taking.done():
        taking.cancel()
        with contextlib.suppress(BaseException):
            await taking
    if taking.done() and not taking.cancelled() and taking.exception() is None:
        await taking.result().release()


def _added(first: TurnUsage | None, second: TurnUsage | None) -> TurnUsage | None:
    """The tokens of two calls of one model (either may have reported none)."""
    if first is None or second is None:
        return first or second
    return TurnUsage(
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        model=second.model,
    )


def _ms_since(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
