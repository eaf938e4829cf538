"""``python -m services.orchestrator.asyncapi [PATH]``: write the AsyncAPI document of the events.

Generated from the FastStream app, so it always says what the code does; the test suite fails
when contracts/asyncapi.json is stale. It lives in ``contracts`` (package data) so that the
gateway serves it at ``/asyncapi`` wherever it is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts.topology import DEFAULT_MAX_QUEUED_SIMULATIONS
from services.judge.app import create_app as create_judge_app
from services.judge.settings import JudgeSettings
from services.orchestrator.app import create_app
from services.orchestrator.settings import OrchestratorSettings

__all__ = ["DOCUMENT_PATH", "render_asyncapi"]

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "asyncapi.json"
_DOCUMENTED_BROKER = "amqp://guest:guest@localhost:5672/"


def render_asyncapi() -> str:
    settings = OrchestratorSettings(
        amqp_url=_DOCUMENTED_BROKER,
        user_simulator="scripted",
        max_queued_simulations=DEFAULT_MAX_QUEUED_SIMULATIONS,
    )
    spec = create_app(settings).schema.to_specification()
    document = json.loads(spec.to_json())
    # The judge (python -m services.judge) is the topic's other consumer: its channels too.
    judge = create_judge_app(JudgeSettings(amqp_url=_DOCUMENTED_BROKER, judge="offline"))
    judge_document = json.loads(judge.schema.to_specification().to_json())
    for section in ("channels", "operations"):
        document.setdefault(section, {}).update(judge_document.get(section, {}))
    for name, entries in judge_document.get("components", {}).items():
        document.setdefault("components", {}).setdefault(name, {}).update(entries)
    # FastStream lists several subscribers in no fixed order: sorted, the document is stable.
    components = document.get("components", {})
    for parent, section in (
        (document, "channels"),
        (document, "operations"),
        *((components, name) for name in list(components)),
    ):
        if isinstance(parent.get(section), dict):
            parent[section] = dict(sorted(parent[section].items()))
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT_PATH
    target.write_text(render_asyncapi(), encoding="utf-8")
    print(f"wrote {target}")
