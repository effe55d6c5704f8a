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
