"""Every built-in model's scenario tests (process_models/<key>/tests/*.json) pass, and together they
take every sequence flow of the model (issue 7: "every built-in model has scenario tests covering
each path, run in CI").

The models run as deployed: with every .dmn of process_models/ and the forms of forms/, so step
data is checked against the real task forms.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from engine.loader import BPMN_NS, parse_xml
from engine.scenarios import run_scenario

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "process_models"
FORMS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "forms").glob("*.json"))}
KEYS = sorted(p.stem for p in MODELS.glob("*.bpmn"))
SCENARIOS = sorted(MODELS.glob("*/tests/*.json"))


def _files(key: str) -> dict[str, bytes]:
    return {f"{key}.bpmn": (MODELS / f"{key}.bpmn").read_bytes(),
            **{p.name: p.read_bytes() for p in sorted(MODELS.glob("*.dmn"))}}


@functools.cache
def _run(path: Path) -> dict:
    key = path.parent.parent.name
    return run_scenario(_files(key), key, json.loads(path.read_text(encoding="utf-8")), forms=FORMS)


def _id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", SCENARIOS, ids=_id)
def test_scenario(path):
    """Issue 7: the scenario's steps complete and its expectations hold."""
    scenario = json.loads(path.read_text(encoding="utf-8"))
    assert scenario.get("name") and scenario.get("description"), "a scenario needs a name and a description"
    expect = scenario.get("expect") or {}
    assert "end" in expect or "waiting" in expect, "a scenario must say where the process ends or waits"
    result = _run(path)
    assert result["ok"], "\n".join(result["failures"])


def test_every_builtin_model_has_scenarios():
    """Issue 7: no built-in model without scenario tests, and no scenarios for a model that does not exist."""
    with_tests = {p.parent.parent.name for p in SCENARIOS}
    assert not set(KEYS) - with_tests, f"models without scenarios: {sorted(set(KEYS) - with_tests)}"
    assert not with_tests - set(KEYS), f"scenarios for unknown models: {sorted(with_tests - set(KEYS))}"


@pytest.mark.parametrize("key", KEYS)
def test_scenarios_take_every_sequence_flow(key):
    """Issue 7: the union of a model's scenarios takes every sequence flow (so every outgoing flow of
    every gateway and every boundary event's path is exercised)."""
    root = parse_xml((MODELS / f"{key}.bpmn").read_bytes(), f"{key}.bpmn")
    flows = {f.get("id"): f"{f.get('sourceRef')} → {f.get('targetRef')}" for f in root.iter(f"{{{BPMN_NS}}}sequenceFlow")}
    taken = {flow for path in SCENARIOS if path.parent.parent.name == key for flow in _run(path)["flows"]}
    missing = [f"{flow} ({flows[flow]})" for flow in sorted(set(flows) - taken)]
    assert not missing, f"{key}: no scenario takes " + ", ".join(missing)
