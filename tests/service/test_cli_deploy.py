"""`inkless deploy <directory>` and the scenario tests stored beside the built-in models (issue 7)."""
from __future__ import annotations

from pathlib import Path

from service.cli import deployable_files

ROOT = Path(__file__).resolve().parents[2]


def test_deploying_the_models_directory_leaves_scenario_tests_out():
    """Issue 7: process_models/<key>/tests/*.json are scenario tests, not forms, so a deployment of
    the directory takes the diagrams and decision tables only."""
    names = [name for name, _ in deployable_files([ROOT / "process_models"])]
    models = [p.name for p in (ROOT / "process_models").iterdir() if p.suffix in (".bpmn", ".dmn")]
    assert sorted(names) == sorted(models)
    assert not [n for n in names if n.endswith(".json")]
    # A file named explicitly is deployed whatever its folder.
    scenario = next((ROOT / "process_models").glob("*/tests/*.json"))
    assert deployable_files([scenario]) == [(scenario.name, scenario.read_bytes())]
