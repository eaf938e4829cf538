"""A vhost of its own with an orchestrator (scripted user) and a gateway, where a test starts
real judges (python -m services.judge) that price their tokens with PRICES."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.integration.conftest import IsolatedStack, Stack, isolated_stack
from tests.integration.processes import ServiceProcess, start_judge

__all__ = ["JUDGE_MODEL", "PRICES", "JudgeStack", "judge_stack_of"]

JUDGE_MODEL = "gpt-4o-mini"
PRICES = {JUDGE_MODEL: {"input": 0.15, "output": 0.6}}


@dataclass
class JudgeStack:
    isolated: IsolatedStack
    url: str
    llm: FakeOpenAI

    def judge(self, name: str, **env: str) -> ServiceProcess:
        process = start_judge(
            name,
            {**self.isolated.env, "CONVSIM_PRICES": json.dumps(PRICES), **env},
            self.isolated.logs,
        )
        self.isolated.processes.append(process)
        return process


@contextmanager
def judge_stack_of(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, orchestrator: str
) -> Iterator[JudgeStack]:
    """The isolated stack (its orchestrator named ``orchestrator``), no judge started yet."""
    with isolated_stack(stack, tmp_path_factory) as isolated:
        isolated.start_orchestrator(orchestrator, CONVSIM_USER_SIMULATOR="scripted")
        _, url = isolated.start_gateway()
        yield JudgeStack(isolated, url, stack.llm)
