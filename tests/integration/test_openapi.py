"""The gateway against its own OpenAPI document, with generated requests (schemathesis): no
500, and every answer has a documented status, content type, headers and shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fakes.bot_api import FakeBotApi
from tests.fakes.server import serve_in_thread
from tests.integration.conftest import Stack, isolated_stack

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway_schema(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """A stack of its own, whose bot answers every bot_id normally (generated requests pick
    any id, and the shared fake reserves some for faults that hang)."""
    plain_bot = FakeBotApi(plain=True)
    with (
        serve_in_thread(plain_bot.app()) as (bot_url, loop),
        isolated_stack(stack, tmp_path_factory) as isolated,
    ):
        plain_bot.bind(loop)
        isolated.start_orchestrator("orchestrator-openapi", CONVSIM_BOT_API_URL=bot_url)
        _, url = isolated.start_gateway()
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_gateway_keeps_its_openapi_promises(gateway_schema: schemathesis.BaseSchema) -> None:
    # Hypothesis driven by hand: schemathesis' pytest plugin does not load on pytest 9.
    operations = [result.ok() for result in gateway_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_its_promises(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=60)

        keeps_its_promises()
