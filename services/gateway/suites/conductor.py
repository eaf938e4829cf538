"""The suite conductor: the one place suite decisions are taken, whichever gateway hosts it.

Every gateway consumes ``convsim.suites``, a quorum queue with a single active consumer: one
conductor acts, the others stand by and take over (with the unacked trigger) when it goes
away. A trigger is a suite's ``queued``, a simulation's end or verdict, or a cancel command.
Per trigger the conductor decides from the suite book, publishes the suite events that
follow (seq = last + 1, confirmed), applies them to the book, and acks the trigger last: a
conductor that dies mid-way leaves the trigger to its successor, which finds what was
published in the log and carries on from there.

Admission is write-ahead: ``admitted`` (with the members' new ids) is published before their
requests. The first trigger a conductor handles (and any redelivered one) makes it check that
every admitted member's simulation is known; one whose request never went out is queued then.

Budget (``budget_usd``): before admitting, the conductor counts what the suite has spent
(spending.py, from the logs); once spent >= budget it publishes ``cancelling`` with reason
``budget_exceeded``, tells every running member to ``stop`` (it ends ``completed`` /
``budget_exceeded`` before its next call), and ends the suite ``completed`` / ``budget_exceeded``
once they have ended and are judged. Besides the usual triggers, a ``budget_check``
(budget_watch.py: a gateway saw a member's turn bring the suite to its budget) asks for the
count between two member ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pydantic import ValidationError

from contracts.commands import CancelCommand, StopCommand
from contracts.events import CompletedEvent, parse_event
from contracts.ids import new_simulation_id
from contracts.judgement import JudgedEvent, parse_judged
from contracts.names import SUITE_CANCEL_ROUTING_KEY, SUITES_QUEUE, suite_routing_key
from contracts.suites import (
    AdmittedMember,
    EndedStatus,
    MemberState,
    SuiteAdmittedEvent,
    SuiteBudgetCheck,
    SuiteCancelCommand,
    SuiteCancellingEvent,
    SuiteEvent,
    SuiteState,
)
from contracts.topology import Replication, suites_queue_arguments
from services.common.pricing import Prices
from services.gateway.broker import GatewayBroker
from services.gateway.relay import EventRelay, UnknownSimulation
from services.gateway.submission import submit_simulation
from services.gateway.suites.admission import member_create
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.fair_share import admissions
from services.gateway.suites.spending import member_calls_cost, suite_spend

__all__ = ["SuiteConductor"]

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 1.0
"""A trigger that could not be handled (broker trouble) goes back to the queue after this."""


class SuiteConductor:
    def __init__(
        self,
        book: SuiteBook,
        broker: GatewayBroker,
        relay: EventRelay,
        prices: Prices | None = None,
        *,
        members_in_flight: int = 100,
    ) -> None:
        self._book = book
        self._members_in_flight = members_in_flight
        self._broker = broker
        self._relay = relay
        self._prices: Prices = prices or {}
        self._checked = False
        self._one_at_a_time = asyncio.Lock()

    async def start(self, connection: AbstractRobustConnection, replication: Replication) -> None:
        channel = await connection.channel()
        # Once its channel is back, this consumer may be the active one again after another
        # gateway's conductor acted: read the log up to now before the next decision.
        channel.reopen_callbacks.add(self._forget_checked)
        await channel.set_qos(prefetch_count=1)  # decisions one after another
        # Declared on the robust channel, so its consumer comes back after a reconnect.
        queue = await channel.declare_queue(
            SUITES_QUEUE, durable=True, arguments=suites_queue_arguments(replication)
        )
        await queue.consume(self._on_message)

    def _forget_checked(self, *_: object) -> None:
        self._checked = False

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._one_at_a_time:
            try:
                await self.handle(
                    message.routing_key or "", message.body, bool(message.redelivered)
                )
            except Exception:
                logger.exception("suite trigger %s not handled; it goes back", message.routing_key)
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                await _settle(message, ack=False)
                return
            await _settle(message, ack=True)

    async def handle(self, routing_key: str, body: bytes, redelivered: bool = False) -> None:
        """Take the decisions one trigger calls for."""
        if not self._checked or redelivered:
            if not self._checked:
                logger.info("this gateway's suite conductor is the active one")
            await self._book.sync()
            await self._requeue_lost_members()
            await self._restop_budget_spent()
            self._checked = True
        if routing_key == SUITE_CANCEL_ROUTING_KEY:
            command = _suite_command(body)
            state = await self._suite(command.suite_id)
            if state is not None:
                if isinstance(command, SuiteCancelCommand):
                    await self._cancel(state)
                await self._advance(state)
            return
        parts = routing_key.split(".")
        if len(parts) != 3:
            return
        if parts[0] == "suite" and parts[2] == "queued":
            state = await self._suite(parts[1])
            if state is not None:
                await self._advance(state)
            return
        if parts[0] != "simulation":
            return
        state = self._book.suite_of(parts[1])
        if state is None or state.is_terminal:
            return
        member = state.member_of(parts[1])
        if member is None:
            return
        try:
            if parts[2] == "judged":
                await self._judged(state, member, parse_judged(body))
            else:
                await self._ended(state, member, body)
        except ValidationError:
            logger.warning("ignoring an invalid event on %s", routing_key)
            return
        await self._advance(state)

    async def _suite(self, suite_id: str) -> SuiteState | None:
        state = self._book.get(suite_id)
        if state is None:  # its queued may still be on its way to this book
            await self._book.sync()
            state = self._book.get(suite_id)
        return state

    async def _ended(self, state: SuiteState, member: MemberState, body: bytes) -> None:
        if member.ended:
            return  # recorded already (a redelivered trigger)
        event = parse_event(body)
        if event.type not in ("completed", "failed", "cancelled"):
            return
        cost = None
        if isinstance(event, CompletedEvent) and event.usage is not None:
            cost = event.usage.total.cost_usd
        if cost is None:  # failed, cancelled, or a model without a price: what can be priced
            cost = await self._calls_cost(member)
        await self._publish(
            state.progress_event(
                member.member.index, status=event.type, verdict=member.verdict, cost_usd=cost
            )
        )

    async def _judged(self, state: SuiteState, member: MemberState, judged: JudgedEvent) -> None:
        if member.verdict is not None:
            return  # the first verdict counts
        status: EndedStatus = judged.simulation_status
        calls_cost = member.cost_usd
        if member.ended:
            status = cast("EndedStatus", member.status)
        else:  # the verdict came first: this progress records the member's calls too
            calls_cost = await self._calls_cost(member)
        judge_cost = judged.usage.cost_usd if judged.usage is not None else None
        costs = [c for c in (calls_cost, judge_cost) if c is not None]
        await self._publish(
            state.progress_event(
                member.member.index,
                status=status,
                verdict=judged.verdict,
                cost_usd=round(sum(costs), 6) if costs else None,
            )
        )

    async def _cancel(self, state: SuiteState) -> None:
        if state.is_terminal:
            return
        if state.status != "cancelling":
            await self._publish(
                SuiteCancellingEvent(suite_id=state.suite_id, seq=state.last_seq + 1)
            )
        for member in state.members:
            if member.status == "running" and member.simulation_id is not None:
                await self._broker.publish_command(
                    CancelCommand(simulation_id=member.simulation_id)
                )

    async def _calls_cost(self, member: MemberState) -> float | None:
        if member.simulation_id is None:
            return None
        cost = await member_calls_cost(self._relay, member.simulation_id, self._prices)
        return cost or None

    async def _check_budget(self, state: SuiteState) -> None:
        """Stop the suite once what it spent reaches its ``budget_usd``."""
        budget = state.queued.suite.budget_usd
        if budget is None or state.status not in ("queued", "running"):
            return
        spent = await suite_spend(state, self._relay, self._prices)
        if spent < budget:
            return
        logger.info(
            "suite %s spent %.6f USD of its budget %.6f: stopping it",
            state.suite_id,
            spent,
            budget,
            extra={"suite_id": state.suite_id},
        )
        await self._publish(
            SuiteCancellingEvent(
                suite_id=state.suite_id, seq=state.last_seq + 1, reason="budget_exceeded"
            )
        )
        await self._stop_running(state)

    async def _stop_running(self, state: SuiteState) -> None:
        for member in state.members:
            if member.status == "running" and member.simulation_id is not None:
                await self._broker.publish_command(StopCommand(simulation_id=member.simulation_id))

    async def _restop_budget_spent(self) -> None:
        """Tell the running members of budget-stopped suites to stop again (the conductor
        before may have died between ``cancelling`` and its commands)."""
        for state in self._book.active():
            if state.status == "cancelling" and state.ending_reason == "budget_exceeded":
                await self._stop_running(state)

    async def _advance(self, state: SuiteState) -> None:
        """Admit what the concurrency allows (this suite's and, shared fairly between every
        suite, CONVSIM_SUITE_MEMBERS_IN_FLIGHT) and the budgets allow; end the suite once it
        is settled."""
        if state.is_terminal:
            return
        await self._check_budget(state)
        for admission in admissions(self._book.active(), self._members_in_flight):
            if admission.state is not state:
                await self._check_budget(admission.state)  # a spent suite admits no more
            if admission.state.status in ("queued", "running"):
                await self._admit(admission.state, admission.members)
        if state.is_settled:
            await self._publish(state.ended_event())
            logger.info(
                "suite %s %s", state.suite_id, state.status, extra={"suite_id": state.suite_id}
            )

    async def _admit(self, state: SuiteState, waiting: list[MemberState]) -> None:
        admitted = [
            AdmittedMember(index=m.member.index, simulation_id=new_simulation_id()) for m in waiting
        ]
        # Recorded first: a successor finds the ids and queues what never went out.
        await self._publish(
            SuiteAdmittedEvent(suite_id=state.suite_id, seq=state.last_seq + 1, members=admitted)
        )
        for member in admitted:
            await self._queue_member(state, member.index, member.simulation_id)

    async def _queue_member(self, state: SuiteState, index: int, simulation_id: str) -> None:
        await submit_simulation(
            member_create(state, index),
            self._broker,
            self._relay,
            state.queued.owner,
            simulation_id=simulation_id,
        )

    async def _requeue_lost_members(self) -> None:
        """Queue the admitted members no simulation event speaks of (their conductor died
        between ``admitted`` and their requests)."""
        for state in self._book.active():
            for member in state.members:
                if member.status != "running" or member.simulation_id is None:
                    continue
                try:
                    await self._relay.state(member.simulation_id)
                except UnknownSimulation:
                    logger.warning(
                        "suite %s: member %d was admitted but never queued; queuing it now",
                        state.suite_id,
                        member.member.index,
                    )
                    await self._queue_member(state, member.member.index, member.simulation_id)

    async def _publish(self, event: SuiteEvent) -> None:
        await self._broker.publish_event(
            event.suite_id,
            suite_routing_key(event.suite_id, event.type),
            event.model_dump_json().encode(),
            event.timestamp,
            event.type,
        )
        # The log may have brought it back to the book already: that is the same event.
        if not self._book.apply(event) and not self._book.holds(event):
            raise RuntimeError(f"suite {event.suite_id}: seq {event.seq} was taken meanwhile")


def _suite_command(body: bytes) -> SuiteCancelCommand | SuiteBudgetCheck:
    """What came on SUITE_CANCEL_ROUTING_KEY: a cancel, or a budget check."""
    try:
        return SuiteCancelCommand.model_validate_json(body)
    except ValidationError:  # extra fields are forbidden: a check's ``command`` is one
        return SuiteBudgetCheck.model_validate_json(body)


async def _settle(message: AbstractIncomingMessage, *, ack: bool) -> None:
    try:
        if ack:
            await message.ack()
        else:
            await message.nack(requeue=True)
    except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
        # Its channel is gone: the broker gives the trigger to the next conductor anyway.
        logger.warning("suite trigger not settled: %r", exc)
