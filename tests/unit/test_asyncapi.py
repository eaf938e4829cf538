"""The AsyncAPI document in the repo is the one the code generates."""

from __future__ import annotations

from services.orchestrator.asyncapi import DOCUMENT_PATH, render_asyncapi


def test_the_asyncapi_document_is_up_to_date() -> None:
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == render_asyncapi(), (
        "contracts/asyncapi.json is stale: run `.venv/bin/python -m services.orchestrator.asyncapi`"
    )
