"""Diagrams and calls the studio tests share (HTTP and browser)."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs" targetNamespace="http://inkless">\n')


def user_task(eid: str, name: str, performers: str = "initiator", form: str | None = None) -> str:
    props = f'<spiffworkflow:property name="performers" value="{performers}" />'
    if form:
        props += f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}" />'
    return (f'<bpmn:userTask id="{eid}" name={quoteattr(name)}><bpmn:extensionElements>'
            f'<spiffworkflow:instructionsForEndUser>请办理{name}</spiffworkflow:instructionsForEndUser>'
            f'<spiffworkflow:properties>{props}</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>\n')


def sequence(key: str, *tasks: tuple[str, str], name: str = "用车申请") -> str:
    """start → the user tasks in order → end, every task done by the initiator."""
    ids = ["start", *[t[0] for t in tasks], "end"]
    body = '<bpmn:startEvent id="start" />\n' + "".join(user_task(*t) for t in tasks) + '<bpmn:endEvent id="end" />\n'
    body += "".join(f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}" />\n'
                    for a, b in zip(ids, ids[1:], strict=False))
    return HEAD + f'<bpmn:process id="{key}" name={quoteattr(name)} isExecutable="true">\n{body}</bpmn:process>\n</bpmn:definitions>\n'


def with_gateway(key: str, conditions: bool) -> str:
    """start → fill → decide (exclusive) → ok | redo → end; `conditions` False leaves the flows bare."""
    ok = '<bpmn:conditionExpression>days &lt;= 3</bpmn:conditionExpression>' if conditions else ""
    redo = '<bpmn:conditionExpression>days &gt; 3</bpmn:conditionExpression>' if conditions else ""
    body = ('<bpmn:startEvent id="start" />\n' + user_task("fill", "填写") + '<bpmn:exclusiveGateway id="decide" name="天数" />\n'
            + user_task("ok", "批准") + user_task("redo", "复核") + '<bpmn:endEvent id="end" />\n'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fill" />\n'
            '<bpmn:sequenceFlow id="f2" sourceRef="fill" targetRef="decide" />\n'
            f'<bpmn:sequenceFlow id="to_ok" sourceRef="decide" targetRef="ok">{ok}</bpmn:sequenceFlow>\n'
            f'<bpmn:sequenceFlow id="to_redo" sourceRef="decide" targetRef="redo">{redo}</bpmn:sequenceFlow>\n'
            '<bpmn:sequenceFlow id="f3" sourceRef="ok" targetRef="end" />\n'
            '<bpmn:sequenceFlow id="f4" sourceRef="redo" targetRef="end" />\n')
    return HEAD + f'<bpmn:process id="{key}" name="用车申请" isExecutable="true">\n{body}</bpmn:process>\n</bpmn:definitions>\n'


def create_model(api, key: str, **fields) -> dict:
    r = api.post("/api/v1/studio", json={"key": key, "name": fields.pop("name", "用车申请"), **fields})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def save(api, key: str, version: int, status: int = 200, **changes) -> dict:
    r = api.client.put(f"/api/v1/studio/{key}/draft", json={"version": version, **changes}, headers=api._headers())
    assert r.status_code == status, r.get_json()
    return r.get_json()


def deploy(api, key: str, version: int, status: int = 201) -> dict:
    r = api.post(f"/api/v1/studio/{key}/deploy", json={"version": version})
    assert r.status_code == status, r.get_json()
    return r.get_json()
