"""Which class of work a simulation request is, for fair sharing: a conversation a person
steers goes first, then a single simulation, then the members of suites."""

from __future__ import annotations

from typing import Literal

from contracts.requests import SimulationCreate

__all__ = ["WORK_CLASSES", "WorkClass", "classify", "work_class_of"]

WorkClass = Literal["interactive", "single", "suite"]
WORK_CLASSES: tuple[WorkClass, ...] = ("interactive", "single", "suite")
"""Highest priority first."""


def work_class_of(request: SimulationCreate) -> WorkClass:
    return classify(request.mode, request.suite_id)


def classify(mode: object, suite_id: object) -> WorkClass:
    """From a request's ``mode`` and ``suite_id`` (as found in JSON)."""
    if mode == "conversation":
        return "interactive"
    if suite_id:
        return "suite"
    return "single"
