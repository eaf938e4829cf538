"""No secret reaches a log: after every other test, the logs of every process the suite ran
are searched for the API keys and the OpenAI key it handed out."""

from __future__ import annotations

import pytest

from tests.integration.conftest import SECRETS, Stack

pytestmark = [pytest.mark.integration, pytest.mark.audit_logs]


def test_no_log_line_of_the_whole_run_holds_a_secret(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
    assert len(logs) >= 5, logs  # the session's processes and the fault tests' at least
    assert sum(path.stat().st_size for path in logs) > 10_000
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{path.name} holds a secret"
            assert secret[:12] not in text, f"{path.name} holds the start of a secret"
