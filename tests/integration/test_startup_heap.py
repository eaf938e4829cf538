"""Each service, run from its entry point, freezes what it built at startup once it is ready,
so full garbage collections no longer walk it (services/common/startup_heap.py)."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import Stack

__all__ = ["frozen_at_startup"]

pytestmark = pytest.mark.integration

FROZEN_LINE = re.compile(r"startup heap frozen: (\d+) objects")


def frozen_at_startup(log: str) -> int:
    """How many objects the service's log says it froze (0: it never did); once at most."""
    found = FROZEN_LINE.findall(log)
    assert len(found) <= 1, f"the startup heap was frozen {len(found)} times"
    return int(found[0]) if found else 0


def test_the_gateway_and_the_orchestrator_freeze_their_startup_heap_once(stack: Stack) -> None:
    logs = {path.stem: path.read_text(errors="replace") for path in stack.logs.glob("*.log")}
    gateways = [name for name in logs if name.startswith("gateway-")]
    assert gateways, f"no gateway log in {sorted(logs)}"
    # Modules, the app, its models and clients: tens of thousands of objects, not a handful.
    assert frozen_at_startup(logs["orchestrator"]) > 10_000
    for gateway in gateways:
        assert frozen_at_startup(logs[gateway]) > 10_000, gateway
