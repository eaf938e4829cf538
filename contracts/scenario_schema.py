"""``python -m contracts.scenario_schema [PATH]``: write the JSON Schema of a suite file.

Generated from ``contracts.scenarios.SuiteFile``; the test suite fails when
docs/scenario.schema.json is stale. Editors can use it to check a suite file as it is typed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts.scenarios import SuiteFile

__all__ = ["SCHEMA_PATH", "render_scenario_schema"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "scenario.schema.json"


def render_scenario_schema() -> str:
    schema = SuiteFile.model_json_schema()
    bare_list = {"type": "array", "items": {"$ref": "#/$defs/Scenario"}, "minItems": 1}
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "convsim suite file",
        "description": "A suite of scenarios (or a bare list of scenarios).",
        "$defs": {**schema.pop("$defs", {}), "SuiteFile": schema},
        "anyOf": [{"$ref": "#/$defs/SuiteFile"}, bare_list],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.write_text(render_scenario_schema(), encoding="utf-8")
    print(f"wrote {target}")
