"""Steering a conversation: a person's messages and its close, as commands on the control
exchange (kept in the control log) for whichever orchestrator holds the conversation.

Message k is the k-th message a person sent. The gateway numbers them under a lock every
gateway shares (an exclusive queue per conversation): k is one more than the person's user
turns recorded so far. A message is refused (``Unanswered``) while the previous one is not
answered: the last turn is a user turn, or this replica sent message k and its user turn has
not come yet. After publishing, the lock is held until the user turn of k is seen (an
orchestrator publishes it as soon as it takes the message), at most ``USER_TURN_WAIT_S``.

The race left: when no orchestrator takes the message within that wait (none is running, or
all are busy), another gateway replica may number the next message k too; the orchestrators
keep the first message k of the control log and drop the other (logged), though both callers
got 202.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from contracts.commands import CloseCommand, MessageCommand
from contracts.events import TERMINAL_EVENT_TYPES, TurnEvent
from contracts.projection import SimulationState
from services.gateway.broker import GatewayBroker, LockHeld
from services.gateway.cancellation import AlreadyFinished
from services.gateway.relay import EventRelay, UnknownSimulation
from services.gateway.streams import close_stream

__all__ = [
    "USER_TURN_WAIT_S",
    "PendingMessages",
    "SentMessage",
    "Unanswered",
    "conversation_state",
    "request_close",
    "send_message",
]

USER_TURN_WAIT_S = 2.0


class Unanswered(Exception):
    """The conversation's previous message has no reply yet."""


class PendingMessages:
    """Per replica: the last message number sent to each conversation whose user turn has not
    been seen yet."""

    def __init__(self) -> None:
        self._sent: dict[str, int] = {}

    def waiting(self, conversation_id: str, person_turns: int) -> bool:
        sent = self._sent.get(conversation_id)
        if sent is None:
            return False
        if person_turns >= sent:
            del self._sent[conversation_id]
            return False
        return True

    def sent(self, conversation_id: str, index: int) -> None:
        self._sent[conversation_id] = index

    def forget(self, conversation_id: str) -> None:
        self._sent.pop(conversation_id, None)


@dataclass(frozen=True)
class SentMessage:
    index: int
    after_seq: int
    """The conversation's last seq before the message: its events follow this one."""


def person_turns(state: SimulationState) -> int:
    """The person's messages recorded so far (user turns that are not history)."""
    return sum(1 for turn in state.turns if turn.role == "user" and not turn.from_history)


async def conversation_state(
    conversation_id: str, relay: EventRelay, owner: str | None
) -> SimulationState:
    """The state of a conversation; a simulation that is not one is unknown here."""
    state = await relay.state(conversation_id, owner)
    if state.request is None or not state.request.is_conversation:
        raise UnknownSimulation(conversation_id)
    return state


def lock_name(conversation_id: str) -> str:
    return f"convsim.lock.conversation.{conversation_id}"


async def send_message(
    conversation_id: str,
    content: str,
    *,
    broker: GatewayBroker,
    relay: EventRelay,
    pending: PendingMessages,
    owner: str | None,
) -> SentMessage:
    """Publish the person's next message. Raises UnknownSimulation, AlreadyFinished,
    Unanswered, or BrokerUnavailable (nothing was sent)."""
    await conversation_state(conversation_id, relay, owner)
    try:
        async with broker.exclusive_lock(lock_name(conversation_id)):
            state = await conversation_state(conversation_id, relay, owner)
            if state.status in TERMINAL_EVENT_TYPES:
                pending.forget(conversation_id)
                raise AlreadyFinished(state)
            sent = person_turns(state)
            last_is_user = bool(state.turns) and state.turns[-1].role == "user"
            if last_is_user or pending.waiting(conversation_id, sent):
                raise Unanswered(conversation_id)
            command = MessageCommand(simulation_id=conversation_id, index=sent + 1, content=content)
            await broker.publish_command(command)
            pending.sent(conversation_id, command.index)
            await _until_taken(conversation_id, relay, state.last_seq)
            return SentMessage(index=command.index, after_seq=state.last_seq)
    except LockHeld as exc:
        raise Unanswered(conversation_id) from exc


async def _until_taken(conversation_id: str, relay: EventRelay, after_seq: int) -> None:
    """Until the person's user turn (or the end) is seen, at most USER_TURN_WAIT_S."""
    events = await relay.follow(conversation_id, after_seq)
    try:
        async with asyncio.timeout(USER_TURN_WAIT_S):
            async for event in events:
                if isinstance(event, TurnEvent) and event.role == "user":
                    return
    except TimeoutError:
        return
    finally:
        with contextlib.suppress(Exception):
            await close_stream(events)


async def request_close(
    conversation_id: str, *, broker: GatewayBroker, relay: EventRelay, owner: str | None
) -> SimulationState:
    """Ask for the conversation to end with ``completed`` / ``closed`` (after the answer to
    every message sent before). Raises UnknownSimulation, AlreadyFinished, BrokerUnavailable."""
    state = await conversation_state(conversation_id, relay, owner)
    if state.status in TERMINAL_EVENT_TYPES:
        raise AlreadyFinished(state)
    await broker.publish_command(CloseCommand(simulation_id=conversation_id))
    return state
