"""Inkless rules a diagram must satisfy before it is deployed, checked on the XML so every
problem names its element. SpiffWorkflow checks none of these at parse time (pitfall P11), and
where it does notice a problem its message often points elsewhere (pitfall P14)."""
from __future__ import annotations

import ast
from collections.abc import Collection
from datetime import datetime

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from . import horizon
from .bundle_checks import call_cycles
from .errors import N_, DiagramProblem
from .restricted import check_script, template_problems

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN, "spiffworkflow": SPIFF}

_TASKS = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
          "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
_FLOW_NODES = _TASKS | _EVENTS | _GATEWAYS
_SCOPES = {"process", "subProcess", "transaction", "adHocSubProcess"}
_FORM_PROPERTIES = ("formJsonSchemaFilename", "formUiSchemaFilename")

# Other Python expressions SpiffWorkflow evaluates at run time: (element path, problem template).
# The path is relative to the flow node that owns it; the problem names that flow node.
_EXPRESSIONS = (
    ("bpmn:multiInstanceLoopCharacteristics/bpmn:loopCardinality", N_("loop cardinality error: %(error)s")),
    ("bpmn:multiInstanceLoopCharacteristics/bpmn:completionCondition", N_("completion condition error: %(error)s")),
    ("bpmn:standardLoopCharacteristics/bpmn:loopCondition", N_("loop condition error: %(error)s")),
    ("bpmn:conditionalEventDefinition/bpmn:condition", N_("event condition error: %(error)s")),
    (".//spiffworkflow:messagePayload", N_("message payload error: %(error)s")),
)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _namespace(el: etree._Element) -> str | None:
    return etree.QName(el).namespace if isinstance(el.tag, str) else None


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


def _flow_node_owner(el: etree._Element) -> etree._Element | None:
    """The nearest enclosing BPMN flow node (or process), which is what a designer can click on."""
    node = el
    while node is not None:
        if _namespace(node) == BPMN and (_local(node) in _FLOW_NODES or _local(node) == "process"):
            return node
        node = node.getparent()
    return None


def _naive_iso(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is None
    except ValueError:
        return False  # an ISO week date ("2025W101T09:00"): SpiffWorkflow parses it itself


_TIMER_KINDS = {"timeDuration": "duration", "timeDate": "date", "timeCycle": "cycle"}


def _literal(text: str):
    """The value of `text` when it is a Python literal, else None (an expression over task data)."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _check_timer_literal(part: str, text: str) -> str | None:
    """Returns a problem template if `text` is a string literal SpiffWorkflow cannot use as `part`.

    The literal is handed to SpiffWorkflow's own parsers, so deploy time and run time agree on what
    is valid. Anything that is not a literal is an expression over task data: syntax only."""
    value = _literal(text)
    if value is None:
        return None
    if not isinstance(value, str):
        return N_("timer value must be an ISO 8601 string")
    try:
        # Before SpiffWorkflow's parsers: they do calendar arithmetic one month at a time.
        horizon.check_timer_value(_TIMER_KINDS[part], value)
    except horizon.TimerBeyondHorizon:
        return N_("timer value %(value)s lies more than 100 years ahead")
    except horizon.TimerNotIso:
        pass  # SpiffWorkflow's parsers below say which form was expected
    try:
        if part == "timeDuration":
            TimerEventDefinition.parse_iso_duration(value)
        elif part == "timeCycle":
            if not value.upper().startswith("R"):
                return N_("timer value %(value)s is not an ISO 8601 cycle (e.g. \"R3/PT1H\")")
            TimerEventDefinition.parse_iso_recurring_interval(value)
        else:
            moment = TimerEventDefinition.parse_time_or_duration(value)
            if not isinstance(moment, datetime):
                return N_("timer value %(value)s is not an ISO 8601 date and time")
            if _naive_iso(value):
                # SpiffWorkflow would read it in the server's local time zone (pitfall P3).
                return N_("timer date %(value)s has no time zone; add one, e.g. +08:00")
    except Exception:  # noqa: BLE001 - SpiffWorkflow's parsers raise bare Exception / ValueError / KeyError
        if part == "timeDuration":
            return N_("timer value %(value)s is not an ISO 8601 duration (e.g. \"PT48H\")")
        if part == "timeCycle":
            return N_("timer value %(value)s is not an ISO 8601 cycle (e.g. \"R3/PT1H\")")
        return N_("timer value %(value)s is not an ISO 8601 date and time")
    return None


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
        if not isinstance(el.tag, str) or _namespace(el) != BPMN:
            continue
        kind = _local(el)
        el_id = el.get("id")
        if kind == "userTask":
            props = _properties(el)
            if not props.get("performers") and el_id not in lanes:
                add(el_id, N_("user task '%(name)s' has no performers: put it in a lane or set the 'performers' property"),
                    name=el.get("name") or el_id)
            if not props.get("formJsonSchemaFilename") and not _ext_text(el, "instructionsForEndUser") \
                    and props.get("approval", "").lower() != "true":
                add(el_id, N_("user task '%(name)s' needs a form or instructions"), name=el.get("name") or el_id)
            problems.extend(_check_due(el, props.get("due"), file))
        if kind in _TASKS:
            instructions = _ext_text(el, "instructionsForEndUser")
            if instructions and "{" in instructions:
                for template, params in template_problems(instructions):
                    add(el_id, template, **params)
        if kind in _TASKS:
            props = _properties(el)
            for prop in _FORM_PROPERTIES:
                form = (props.get(prop) or "").strip()
                if not form:
                    continue
                if used_forms is not None:
                    used_forms.add(form)
                if forms is not None and form not in forms:
                    add(el_id, N_("form file '%(form)s' does not exist"), form=form)
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
        if kind in _FLOW_NODES:
            for path, template in _EXPRESSIONS:
                for node in el.iterfind(path, NS):
                    text = (node.text or "").strip()
                    if not text or _flow_node_owner(node) is not el:
                        continue  # nested flow nodes are checked on their own
                    for msg in check_script(text, "eval"):
                        add(el_id, template, error=msg)
        if kind == "timerEventDefinition":
            owner = _flow_node_owner(el)
            owner_id = owner.get("id") if owner is not None else el.get("id")
            for part in ("timeDuration", "timeDate", "timeCycle"):
                node = el.find(f"bpmn:{part}", NS)
                if node is None:
                    continue
                text = (node.text or "").strip()
                if not text:
                    add(owner_id, N_("timer has an empty %(part)s"), part=part)
                    continue
                errors = check_script(text, "eval")
                for msg in errors:
                    add(owner_id, N_("timer expression error: %(error)s"), error=msg)
                if not errors and (template := _check_timer_literal(part, text)):
                    add(owner_id, template, value=text)
        if kind == "serviceTask":
            problems.extend(_check_service_task(el, file, services))
        if kind == "callActivity":
            process = next((a for a in el.iterancestors(f"{{{BPMN}}}process")), None)
            called = (el.get("calledElement") or "").strip()
            if process is not None and called and called == process.get("id"):
                add(el_id, N_("call activity '%(name)s' calls its own process '%(called)s'; a process may not "
                              "call itself"), name=el.get("name") or el_id, called=called)
        if kind in ("exclusiveGateway", "inclusiveGateway"):
            outgoing = [f for f in root.iter(f"{{{BPMN}}}sequenceFlow") if f.get("sourceRef") == el_id]
            if len(outgoing) > 1 and not el.get("default"):
                bare = [f.get("id") for f in outgoing
                        if f.find("bpmn:conditionExpression", NS) is None
                        or not (f.find("bpmn:conditionExpression", NS).text or "").strip()]
                if bare:
                    add(el_id, N_("gateway '%(name)s' has outgoing flows without a condition (%(flows)s) and no default flow"),
                        name=el.get("name") or el_id, flows=", ".join(bare))
    problems.extend(call_cycles({file: root}))
    for proc in root.iterfind("bpmn:process", NS):
        problems.extend(_foreign_id_clashes(proc, file))
    for scope in root.iter(*(f"{{{BPMN}}}{s}" for s in _SCOPES)):
        if _local(scope) == "process" and scope.get("isExecutable", "false").lower() != "true":
            continue
        problems.extend(_dangling_references(root, scope, file))
        problems.extend(_unreachable(scope, file))
    return problems


def _check_due(el: etree._Element, due: str | None, file: str) -> list[DiagramProblem]:
    """The `due` property: an expression giving an ISO 8601 duration or date-time (R-WF-3)."""
    if due is None or not due.strip():
        return []
    problems = [DiagramProblem.of(file, el.get("id"), N_("due property error: %(error)s"), error=msg)
                for msg in check_script(due.strip(), "eval")]
    value = _literal(due) if not problems else None
    if value is not None and not isinstance(value, str):
        problems.append(DiagramProblem.of(file, el.get("id"), N_(
            "due date %(value)s is neither an ISO 8601 duration (e.g. \"P3D\") nor a date and time"),
            value=due.strip()))
    elif isinstance(value, str):
        try:
            horizon.due_moment(value)
        except horizon.TimerBeyondHorizon:
            problems.append(DiagramProblem.of(file, el.get("id"), N_("due date %(value)s lies more than 100 years "
                                                                     "ahead"), value=due.strip()))
        except (ValueError, OverflowError):
            problems.append(DiagramProblem.of(file, el.get("id"), N_(
                "due date %(value)s is neither an ISO 8601 duration (e.g. \"P3D\") nor a date and time"),
                value=due.strip()))
    return problems


def _check_service_task(el: etree._Element, file: str, services: Collection[str] | None) -> list[DiagramProblem]:
    el_id = el.get("id")
    op = el.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NS)
    if op is None:
        # Typical of Camunda exports (camunda:class, camunda:delegateExpression): nothing Inkless can call.
        return [DiagramProblem.of(file, el_id, N_(
            "service task '%(name)s' does not say which service to call "
            "(add a spiffworkflow:serviceTaskOperator)"), name=el.get("name") or el_id)]
    problems = []
    service = op.get("id")
    if not service:
        problems.append(DiagramProblem.of(file, el_id, N_("service task '%(name)s' names no service"),
                                          name=el.get("name") or el_id))
    elif services is not None and service not in services:
        problems.append(DiagramProblem.of(file, el_id, N_("unknown service '%(service)s'"), service=service))
    if service and service == el_id:
        # SpiffWorkflow indexes every element with an id, so the operator would shadow its own task
        # and the parser would fail with "There is no support implemented for this task type".
        problems.append(DiagramProblem.of(file, el_id, N_(
            "service task id '%(id)s' is the same as the service it calls; give the task another id"), id=el_id))
    seen: set[str] = set()
    for param in op.iterfind("spiffworkflow:parameters/spiffworkflow:parameter", NS):
        name = param.get("id") or ""
        if not name:
            problems.append(DiagramProblem.of(file, el_id, N_("a parameter of service task '%(name)s' has no id"),
                                              name=el.get("name") or el_id))
            continue
        if name in seen:
            problems.append(DiagramProblem.of(file, el_id, N_("service parameter '%(param)s' is given twice"),
                                              param=name))
        seen.add(name)
        value = param.get("value")
        if value is None or not value.strip():
            problems.append(DiagramProblem.of(file, el_id, N_("service parameter '%(param)s' has no value"),
                                              param=name))
            continue
        for msg in check_script(value.strip(), "eval"):
            problems.append(DiagramProblem.of(file, el_id, N_("service parameter '%(param)s' error: %(error)s"),
                                              param=name, error=msg))
    return problems


def _foreign_id_clashes(proc: etree._Element, file: str) -> list[DiagramProblem]:
    """Extension elements with an id equal to a BPMN element's id (SpiffWorkflow mixes them up).

    SpiffWorkflow indexes every `@id` under a process, extension elements included, last one wins;
    a spiffworkflow:parameter or :serviceTaskOperator (or a Camunda formField) named like a task
    makes that task unparseable or silently replaces it."""
    bpmn_ids: dict[str, etree._Element] = {}
    foreign: list[etree._Element] = []
    for el in proc.iter():
        if not isinstance(el.tag, str) or el.get("id") is None:
            continue
        if _namespace(el) == BPMN:
            bpmn_ids.setdefault(el.get("id"), el)
        else:
            foreign.append(el)
    problems = []
    reported: set[tuple[str, str]] = set()
    for el in foreign:
        target = bpmn_ids.get(el.get("id"))
        if target is None:
            continue
        owner = _flow_node_owner(el)
        if _local(el) == "serviceTaskOperator" and owner is target:
            continue  # reported by _check_service_task with a more specific message
        key = (target.get("id"), _local(el))
        if key in reported:
            continue
        reported.add(key)
        problems.append(DiagramProblem.of(
            file, target.get("id"),
            N_("id '%(id)s' is used by %(kind)s '%(other)s' in '%(owner)s' as well; ids must be unique, rename one"),
            id=target.get("id"), kind=f"{etree.QName(el).localname}", other=el.get("id"),
            owner=owner.get("id") if owner is not None else "?"))
    return problems


def _dangling_references(root: etree._Element, scope: etree._Element, file: str) -> list[DiagramProblem]:
    """Sequence flows and boundary events must refer to flow nodes of the same (sub)process.

    SpiffWorkflow reports a missing target as "found two items, perhaps a form has the same ID?"
    on the *source* node (pitfall P14); here the flow itself is named."""
    local_nodes = {el.get("id") for el in scope if _local(el) in _FLOW_NODES and _namespace(el) == BPMN}
    all_ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    problems = []

    def missing(ref: str | None) -> str | None:
        if not ref:
            return N_("'%(node)s' has no %(attribute)s")
        if ref in local_nodes:
            return None
        if ref in all_ids:
            return N_("'%(node)s' refers to '%(ref)s' (%(attribute)s), which is not in the same process or subprocess")
        return N_("'%(node)s' refers to '%(ref)s' (%(attribute)s), which does not exist")

    for el in scope:
        if _namespace(el) != BPMN:
            continue
        if _local(el) == "sequenceFlow":
            refs = (("sourceRef", el.get("sourceRef")), ("targetRef", el.get("targetRef")))
        elif _local(el) == "boundaryEvent":
            refs = (("attachedToRef", el.get("attachedToRef")),)
        else:
            continue
        for attribute, ref in refs:
            template = missing(ref)
            if template:
                problems.append(DiagramProblem.of(file, el.get("id"), template, node=el.get("id"),
                                                  ref=ref or "", attribute=attribute))
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
