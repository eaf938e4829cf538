"""Which waiting suite members to admit now: each suite within its own ``concurrency``, all
suites together within CONVSIM_SUITE_MEMBERS_IN_FLIGHT, shared in turn between owners and,
within an owner, between its suites.

Each free slot goes to the owner with the fewest members in flight (ties: the one admitted
least so far in its active suites, then the oldest suite), and within that owner to its suite
with the fewest in flight (ties: fewest admitted, then oldest). With every owner busy this is
round robin; an owner that needs less leaves the rest to the others. It is derived from the
suite book alone, so a conductor that takes over decides as its predecessor would have.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from contracts.suites import MemberState, SuiteState

__all__ = ["Admission", "admissions", "in_flight"]


@dataclass(frozen=True)
class Admission:
    state: SuiteState
    members: list[MemberState]


def in_flight(state: SuiteState) -> int:
    """Members admitted and not ended (their simulation is queued or running)."""
    return sum(member.status == "running" for member in state.members)


def _admitted(state: SuiteState) -> int:
    return sum(member.status != "waiting" for member in state.members)


def admissions(active: list[SuiteState], members_in_flight: int) -> list[Admission]:
    """The members to admit now, suite by suite (each suite's in member order)."""
    candidates = {s.suite_id: s.to_admit() for s in active}
    flight = {s.suite_id: in_flight(s) for s in active}
    admitted = {s.suite_id: _admitted(s) for s in active}
    free = members_in_flight - sum(flight.values())
    chosen: dict[str, list[MemberState]] = defaultdict(list)
    by_owner: dict[str | None, list[SuiteState]] = defaultdict(list)
    for state in sorted(active, key=lambda s: (s.queued.timestamp, s.suite_id)):
        by_owner[state.queued.owner].append(state)

    def suite_key(state: SuiteState) -> tuple[int, int]:
        return flight[state.suite_id], admitted[state.suite_id]

    while free > 0:
        ready = {
            owner: [s for s in suites if candidates[s.suite_id]]
            for owner, suites in by_owner.items()
        }
        ready = {owner: suites for owner, suites in ready.items() if suites}
        if not ready:
            break
        owner = min(
            ready,
            key=lambda o: (
                sum(flight[s.suite_id] for s in by_owner[o]),
                sum(admitted[s.suite_id] for s in by_owner[o]),
            ),
        )  # min keeps the first of equals: the owner of the oldest suite
        state = min(ready[owner], key=suite_key)
        chosen[state.suite_id].append(candidates[state.suite_id].pop(0))
        flight[state.suite_id] += 1
        admitted[state.suite_id] += 1
        free -= 1
    return [Admission(s, chosen[s.suite_id]) for s in active if chosen[s.suite_id]]
