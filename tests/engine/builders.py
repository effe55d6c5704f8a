"""Small helpers to write BPMN for engine tests inline, without the boilerplate.

Only the process body is spelled out in each test; these wrap it into a SpiffWorkflow-valid
document (the bpmn + spiffworkflow namespaces, no diagram interchange: spiff does not need it).
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"\n'
    '                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
    '                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"\n'
    '                  id="definitions_{pid}" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def document(*processes: str, pid: str = "test", head: str = "") -> str:
    """A bpmn:definitions holding the given processes; `head` goes first (messages, errors)."""
    return HEADER.format(pid=pid) + head + "".join(processes) + "</bpmn:definitions>\n"


def process(pid: str, *body: str, name: str | None = None, executable: bool = True) -> str:
    return (f'<bpmn:process id="{pid}" name={quoteattr(name or pid)} '
            f'isExecutable="{"true" if executable else "false"}">\n' + "".join(body) + "</bpmn:process>\n")


def bpmn(pid: str, *body: str, head: str = "") -> str:
    """One executable process `pid` in its own document."""
    return document(process(pid, *body), pid=pid, head=head)


def start(eid: str = "start", inner: str = "") -> str:
    return f'<bpmn:startEvent id="{eid}">{inner}</bpmn:startEvent>\n'


def end(eid: str = "end", inner: str = "") -> str:
    return f'<bpmn:endEvent id="{eid}">{inner}</bpmn:endEvent>\n'


def user(eid: str, name: str | None = None, instructions: str = "请处理。", performers: str = "initiator",
         form: str | None = None, ui_form: str | None = None, extra: str = "", post: str | None = None,
         pre: str | None = None) -> str:
    props = f'<spiffworkflow:property name="performers" value="{performers}" />' if performers else ""
    if form:
        props += f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}" />'
    if ui_form:
        props += f'<spiffworkflow:property name="formUiSchemaFilename" value="{ui_form}" />'
    ext = ""
    if instructions:
        ext += f"<spiffworkflow:instructionsForEndUser>{escape(instructions)}</spiffworkflow:instructionsForEndUser>"
    if pre:
        ext += f"<spiffworkflow:preScript>{escape(pre)}</spiffworkflow:preScript>"
    if post:
        ext += f"<spiffworkflow:postScript>{escape(post)}</spiffworkflow:postScript>"
    ext += f"<spiffworkflow:properties>{props}</spiffworkflow:properties>" if props else ""
    return (f'<bpmn:userTask id="{eid}" name={quoteattr(name or eid)}>'
            f"<bpmn:extensionElements>{ext}{extra}</bpmn:extensionElements></bpmn:userTask>\n")


def script(eid: str, code: str) -> str:
    return f'<bpmn:scriptTask id="{eid}" name="{eid}"><bpmn:script>{escape(code)}</bpmn:script></bpmn:scriptTask>\n'


def service(eid: str, operator: str, params: dict[str, str] | None = None, result: str = "result") -> str:
    ps = "".join(f'<spiffworkflow:parameter id="{k}" type="any" value={quoteattr(v)} />'
                 for k, v in (params or {}).items())
    return (f'<bpmn:serviceTask id="{eid}" name="{eid}"><bpmn:extensionElements>'
            f'<spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="{result}">'
            f"<spiffworkflow:parameters>{ps}</spiffworkflow:parameters>"
            "</spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>\n")


def xor(eid: str, default: str | None = None) -> str:
    attr = f' default="{default}"' if default else ""
    return f'<bpmn:exclusiveGateway id="{eid}"{attr} />\n'


def parallel(eid: str) -> str:
    return f'<bpmn:parallelGateway id="{eid}" />\n'


def flow(source: str, target: str, condition: str | None = None, fid: str | None = None) -> str:
    fid = fid or f"flow_{source}_{target}"
    if condition is None:
        return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}" />\n'
    return (f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">'
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}'
            "</bpmn:conditionExpression></bpmn:sequenceFlow>\n")


def chain(*ids: str) -> str:
    """Unconditional flows a -> b -> c ..."""
    return "".join(flow(a, b) for a, b in zip(ids, ids[1:], strict=False))


def timer_boundary(eid: str, attached_to: str, duration: str, interrupting: bool = True) -> str:
    return (f'<bpmn:boundaryEvent id="{eid}" attachedToRef="{attached_to}" '
            f'cancelActivity="{"true" if interrupting else "false"}">'
            f'<bpmn:timerEventDefinition><bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{escape(duration)}'
            "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>\n")


def timer_catch(eid: str, duration: str) -> str:
    return (f'<bpmn:intermediateCatchEvent id="{eid}"><bpmn:timerEventDefinition>'
            f'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{escape(duration)}</bpmn:timeDuration>'
            "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>\n")


def message(mid: str, name: str) -> str:
    """A bpmn:message declaration (goes in `head`)."""
    return f'<bpmn:message id="{mid}" name="{name}" />\n'


def message_catch(eid: str, message_ref: str, variable: str | None = None) -> str:
    ext = (f"<bpmn:extensionElements><spiffworkflow:messageVariable>{variable}</spiffworkflow:messageVariable>"
           "</bpmn:extensionElements>") if variable else ""
    return (f'<bpmn:intermediateCatchEvent id="{eid}">'
            f'<bpmn:messageEventDefinition messageRef="{message_ref}">{ext}</bpmn:messageEventDefinition>'
            "</bpmn:intermediateCatchEvent>\n")


def call(eid: str, called: str) -> str:
    return f'<bpmn:callActivity id="{eid}" name="{eid}" calledElement="{called}" />\n'


# -- loading and running ---------------------------------------------------------------------------

def load(xml: str, key: str | None = None, **kwargs):
    """The ParsedProcess `key` (default: the only one) from one inline document, validated."""
    from engine.loader import load_bundle

    bundle = load_bundle({"test.bpmn": xml}, **kwargs)
    if key is None:
        (key,) = bundle.processes
    return bundle.processes[key]


def load_unchecked(xml: str, key: str):
    """A ParsedProcess straight from SpiffWorkflow, skipping Inkless validation.

    Stands for an instance of an older deployment, or a check the validator does not make, so the
    run-time guards (sandbox, incidents) can be tested on diagrams the validator would refuse."""
    from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

    from engine.loader import ParsedProcess

    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(xml.encode("utf-8"), filename="unchecked.bpmn")
    return ParsedProcess(key=key, name=key, file="unchecked.bpmn", spec=parser.get_spec(key),
                         subprocess_specs=parser.get_subprocess_specs(key))


def script_engine(**kwargs):
    from engine.sandbox import make_script_engine

    return make_script_engine(**kwargs)


def reload(instance, keep: int = 12, **engine_kwargs):
    """What the service does between requests: compact, serialize, and load into a new Instance."""
    from engine.runtime import Instance

    state = instance.dumps(keep_history=keep)
    return Instance.load(instance.process, state, script_engine(**engine_kwargs))


def ready(instance, element_id: str):
    """The one READY user task for `element_id`."""
    tasks = [t for t in instance.user_tasks() if t.element_id == element_id]
    assert len(tasks) == 1, f"expected one READY '{element_id}', have {[t.element_id for t in instance.user_tasks()]}"
    return tasks[0]


def depth(instance) -> int:
    """Depth of the deepest task in the top-level task tree."""
    deepest = 0
    for task in instance.workflow.tasks.values():
        d, node = 0, task
        while node.parent is not None:
            d, node = d + 1, node.parent
        deepest = max(deepest, d)
    return deepest
