"""A suite's members: expanded from its scenarios when it is created, and each one's request
when it is admitted (an ordinary simulation, linked by ``suite_id``, ``scenario`` and
``repeat_index``)."""

from __future__ import annotations

from contracts.requests import SimulationCreate
from contracts.scenarios import Scenario, SuiteCreate, simulation_body
from contracts.suites import SuiteMember, SuiteState

__all__ = ["expand_members", "member_create", "scenario_create"]


def expand_members(suite: SuiteCreate) -> list[SuiteMember]:
    """Every run in order: scenario order, then repeats 1..k."""
    members: list[SuiteMember] = []
    for scenario in suite.scenarios:
        for repeat_index in range(1, suite.repeat_of(scenario) + 1):
            members.append(
                SuiteMember(index=len(members), scenario=scenario.name, repeat_index=repeat_index)
            )
    return members


def scenario_create(
    scenario: Scenario, suite_id: str | None = None, repeat_index: int | None = None
) -> SimulationCreate:
    """The simulation request of one run of ``scenario``."""
    body = simulation_body(scenario)
    if suite_id is not None:
        body.update(suite_id=suite_id, scenario=scenario.name, repeat_index=repeat_index)
    return SimulationCreate.model_validate(body)


def member_create(state: SuiteState, index: int) -> SimulationCreate:
    """The simulation request of member ``index`` of the suite."""
    member = state.members[index].member
    scenario = next(s for s in state.queued.suite.scenarios if s.name == member.scenario)
    return scenario_create(scenario, state.suite_id, member.repeat_index)
