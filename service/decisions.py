"""Deciding with a deployed decision table outside a diagram (issue 18).

A table that the platform reads for itself (the weights of the assessment's reference score,
process_models/assessment_weights.dmn) is evaluated exactly as a business rule task evaluates one:
a one-step process calling the decision is loaded with the table by the deployment's loader
(engine/loader.py `load_bundle`) and run by the engine (engine/runtime.py) with the production
script engine, so its cells run in the sandbox and nothing here interprets DMN itself.

`newest_table` finds the newest deployed file that defines a decision; deployments never change,
so what a table decides for given inputs is remembered by its content.
"""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from flask import current_app, has_app_context
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from engine.errors import InvalidDiagram
from engine.loader import load_bundle, parse_xml
from engine.runtime import Instance
from engine.sandbox import make_script_engine

from .models import DeploymentFile, ProcessDefinition

DECIDE = "decide"  # the business rule task of the one-step process
_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="definitions_decide" targetNamespace="http://inkless/decisions">
  <bpmn:process id="decide_only" name="decide" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>flow_decide</bpmn:outgoing></bpmn:startEvent>
    <bpmn:businessRuleTask id="decide" name="decide">
      <bpmn:extensionElements>
        <spiffworkflow:calledDecisionId>{decision}</spiffworkflow:calledDecisionId>
      </bpmn:extensionElements>
      <bpmn:incoming>flow_decide</bpmn:incoming>
      <bpmn:outgoing>flow_end</bpmn:outgoing>
    </bpmn:businessRuleTask>
    <bpmn:endEvent id="end"><bpmn:incoming>flow_end</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="flow_decide" sourceRef="start" targetRef="decide" />
    <bpmn:sequenceFlow id="flow_end" sourceRef="decide" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


class DecisionFailed(Exception):
    """The table cannot be read, or deciding with it failed (the message says which and why)."""


def defines(content: str, decision_id: str) -> bool:
    """Whether a DMN file defines the decision `decision_id` (False for one that does not parse)."""
    try:
        return any(d.get("id") == decision_id for d in parse_xml(content, "table.dmn").iter("{*}decision"))
    except InvalidDiagram:
        return False


def newest_table(s: Session, decision_id: str, process_key: str | None = None) -> DeploymentFile | None:
    """The newest deployed DMN file defining `decision_id`; with `process_key`, one deployed with a
    version of that process first (the installer deploys every table with every built-in diagram,
    so a procedure's own deployments are where its table is changed), then any."""
    query = select(DeploymentFile.id).where(DeploymentFile.kind == "dmn",
                                             DeploymentFile.content.contains(decision_id, autoescape=True))
    order = [DeploymentFile.deployment_id.desc(), DeploymentFile.id.desc()]
    if process_key is not None:
        own = select(ProcessDefinition.deployment_id).where(ProcessDefinition.key == process_key)
        order.insert(0, case((DeploymentFile.deployment_id.in_(own), 0), else_=1))
    for file_id in s.scalars(query.order_by(*order)):
        row = s.get(DeploymentFile, file_id)
        if defines(row.content, decision_id):
            return row
    return None


def shipped_table(name: str) -> tuple[str, str]:
    """(path, content) of a table file in process_models/ (the configured directory in an app)."""
    folder = (current_app.config["INKLESS"].process_models_dir if has_app_context()
              else Path(__file__).resolve().parent.parent / "process_models")
    path = folder / name
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as e:
        raise DecisionFailed(f"{name}: cannot read the table file: {e.strerror or e}") from None


def _script_engine():
    if has_app_context():
        from .workflows import script_engine

        return script_engine()
    return make_script_engine()


_CACHE_SIZE = 64
_cache: OrderedDict[tuple, dict] = OrderedDict()
_lock = threading.Lock()


def decide(file: str, content: str, decision_id: str, data: Mapping | None = None) -> dict:
    """What the decision `decision_id` of the table `content` (file name `file`) gives for `data`:
    the task data a business rule task calling it would add (`verdict.grade` → {"verdict": {…}})."""
    data = dict(data or {})
    key = (content, decision_id, tuple(sorted((k, repr(v)) for k, v in data.items())))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return copy.deepcopy(_cache[key])
    try:
        bundle = load_bundle({"decide.bpmn": _PROCESS.format(decision=decision_id)}, {file: content})
    except InvalidDiagram as e:
        raise DecisionFailed("; ".join(f"{file}: {p.element or ''}: {p.message}" for p in e.problems)) from None
    instance = Instance.start(bundle.processes["decide_only"], _script_engine(), data)
    if instance.incidents or not instance.completed:
        why = "; ".join(i.message for i in instance.incidents) or "the decision did not complete"
        raise DecisionFailed(f"{file}: decision {decision_id}: {why}")
    out = {k: v for k, v in instance.data.items() if k not in data}
    with _lock:
        _cache[key] = out
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return copy.deepcopy(out)
