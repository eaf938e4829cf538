"""Which class of work a simulation request is, for fair sharing: a conversation a person
steers goes first, then a single simulation, then the members of suites."""

from __future__ import annotations

from typing import Literal

from contracts.requests import SimulationCreate

__all__ = ["WORK_CLASSES", "WorkClass", "work_class_of"]

WorkClass = Literal["interactive", "single", "suite"]
WORK_CLASSES: tuple[WorkClass, ...] = ("interactive", "single", "suite")
"""Highest priority first."""


def work_class_of(request: SimulationCreate) -> WorkClass:
    if request.is_conversation:
        return "interactive"
    if request.suite_id is not None:
        return "suite"
    return "single"
