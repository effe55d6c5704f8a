"""Inkless rules a diagram must satisfy before it is deployed, checked on the XML so every
problem names its element. SpiffWorkflow checks none of these at parse time (pitfall P11)."""
from __future__ import annotations

import ast
import re
from collections.abc import Collection

from lxml import etree

from .errors import N_, DiagramProblem
from .sandbox import check_script

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN, "spiffworkflow": SPIFF}

_TASKS = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
          "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
_FLOW_NODES = _TASKS | _EVENTS | _GATEWAYS
_SCOPES = {"process", "subProcess", "transaction", "adHocSubProcess"}

_DURATION = re.compile(r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                       r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")
_CYCLE = re.compile(r"^R\d*/")


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _properties(el: etree._Element) -> dict[str, str]:
    return {p.get("name"): p.get("value", "") for p in el.iterfind(
        "bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NS)}


def _ext_text(el: etree._Element, name: str) -> str | None:
    node = el.find(f"bpmn:extensionElements/spiffworkflow:{name}", NS)
    return node.text if node is not None and node.text and node.text.strip() else None


def _lane_of(root: etree._Element) -> dict[str, str]:
    lanes = {}
    for lane in root.iter(f"{{{BPMN}}}lane"):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or lane.get("id")
    return lanes


def _check_timer_literal(text: str) -> str | None:
    """Returns a problem template if `text` is a quoted literal that is not ISO 8601."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None  # an expression over task data: checked for syntax only
    if not isinstance(value, str):
        return N_("timer value must be an ISO 8601 string")
    if _DURATION.match(value):
        return None
    if _CYCLE.match(value):
        return None
    from datetime import datetime
    try:
        datetime.fromisoformat(value)
        return None
    except ValueError:
        return N_("timer value %(value)s is not an ISO 8601 duration, date or cycle")


def check_process_tree(
    root: etree._Element,
    file: str,
    forms: Collection[str] | None = None,
    services: Collection[str] | None = None,
    used_forms: set[str] | None = None,
) -> list[DiagramProblem]:
    problems: list[DiagramProblem] = []

    def add(element, template, **params):
        problems.append(DiagramProblem.of(file, element, template, **params))

    lanes = _lane_of(root)
    for el in root.iter():
        kind = _local(el)
        el_id = el.get("id")
        if kind == "userTask":
            props = _properties(el)
            if not props.get("performers") and el_id not in lanes:
                add(el_id, N_("user task '%(name)s' has no performers: put it in a lane or set the 'performers' property"),
                    name=el.get("name") or el_id)
            form = props.get("formJsonSchemaFilename")
            if form:
                if used_forms is not None:
                    used_forms.add(form)
                if forms is not None and form not in forms:
                    add(el_id, N_("form file '%(form)s' does not exist"), form=form)
            elif not _ext_text(el, "instructionsForEndUser") and props.get("approval", "").lower() != "true":
                add(el_id, N_("user task '%(name)s' needs a form or instructions"), name=el.get("name") or el_id)
        if kind == "scriptTask":
            script = el.find("bpmn:script", NS)
            for msg in check_script(script.text if script is not None and script.text else "", "exec"):
                add(el_id, N_("script error: %(error)s"), error=msg)
        for hook in ("preScript", "postScript"):
            text = _ext_text(el, hook) if kind in _TASKS else None
            if text:
                for msg in check_script(text, "exec"):
                    add(el_id, N_("%(hook)s error: %(error)s"), hook=hook, error=msg)
        if kind == "sequenceFlow":
            cond = el.find("bpmn:conditionExpression", NS)
            if cond is not None and (cond.text or "").strip():
                for msg in check_script(cond.text.strip(), "eval"):
                    add(el_id, N_("condition error: %(error)s"), error=msg)
        if kind == "timerEventDefinition":
            owner = el.getparent()
            for part in ("timeDuration", "timeDate", "timeCycle"):
                node = el.find(f"bpmn:{part}", NS)
                if node is None:
                    continue
                text = (node.text or "").strip()
                if not text:
                    add(owner.get("id"), N_("timer has an empty %(part)s"), part=part)
                    continue
                errors = check_script(text, "eval")
                for msg in errors:
                    add(owner.get("id"), N_("timer expression error: %(error)s"), error=msg)
                if not errors and (template := _check_timer_literal(text)):
                    add(owner.get("id"), template, value=text)
        if kind == "serviceTask" and services is not None:
            op = el.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NS)
            if op is not None and op.get("id") not in services:
                add(el_id, N_("unknown service '%(service)s'"), service=op.get("id"))
        if kind in ("exclusiveGateway", "inclusiveGateway"):
            outgoing = [f for f in root.iter(f"{{{BPMN}}}sequenceFlow") if f.get("sourceRef") == el_id]
            if len(outgoing) > 1 and not el.get("default"):
                bare = [f.get("id") for f in outgoing
                        if f.find("bpmn:conditionExpression", NS) is None
                        or not (f.find("bpmn:conditionExpression", NS).text or "").strip()]
                if bare:
                    add(el_id, N_("gateway '%(name)s' has outgoing flows without a condition (%(flows)s) and no default flow"),
                        name=el.get("name") or el_id, flows=", ".join(bare))
    for scope in root.iter(*(f"{{{BPMN}}}{s}" for s in _SCOPES)):
        if _local(scope) == "process" and scope.get("isExecutable", "false").lower() != "true":
            continue
        problems.extend(_unreachable(scope, file))
    return problems


def _unreachable(scope: etree._Element, file: str) -> list[DiagramProblem]:
    nodes = {el.get("id"): el for el in scope if _local(el) in _FLOW_NODES}
    edges: dict[str, list[str]] = {}
    for flow in scope.iterfind("bpmn:sequenceFlow", NS):
        edges.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    attached: dict[str, list[str]] = {}
    for node_id, el in nodes.items():
        if _local(el) == "boundaryEvent":
            attached.setdefault(el.get("attachedToRef"), []).append(node_id)
    sources = [i for i, el in nodes.items()
               if _local(el) == "startEvent"
               or (_local(el) == "subProcess" and el.get("triggeredByEvent") == "true")
               or (_local(el) == "intermediateCatchEvent" and el.find("bpmn:linkEventDefinition", NS) is not None)]
    if not sources:
        if _local(scope) == "process":
            return [DiagramProblem.of(file, scope.get("id"), N_("process has no start event"))]
        return []
    seen, stack = set(), list(sources)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(edges.get(current, []))
        stack.extend(attached.get(current, []))
    return [DiagramProblem.of(file, i, N_("'%(name)s' cannot be reached from a start event"), name=el.get("name") or i)
            for i, el in nodes.items() if i not in seen]
