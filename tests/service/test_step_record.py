"""History keeps what people submitted at every step, not only at steps marked `approval`
(issue 14, R-WF-2, R-SEC-10): a studio-designed leave request whose head's form has `decision`
and `opinion` fields of its own; the head's return reason reaches the instance history, the
request's timeline and the applicant's returned task page."""
from __future__ import annotations

import io
import json

from tests.service.test_pages import browser, text  # noqa: F401  (the browser fixture)

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs" '
        'targetNamespace="http://inkless">\n')

LEAVE = HEAD + """<bpmn:process id="studio_leave" name="请假（部门设计）" isExecutable="true">
<bpmn:laneSet id="ls">
  <bpmn:lane id="l_applicant" name="申请人"><bpmn:flowNodeRef>start</bpmn:flowNodeRef>
    <bpmn:flowNodeRef>fill</bpmn:flowNodeRef><bpmn:flowNodeRef>done</bpmn:flowNodeRef></bpmn:lane>
  <bpmn:lane id="l_head" name="部门负责人"><bpmn:flowNodeRef>review</bpmn:flowNodeRef>
    <bpmn:flowNodeRef>outcome</bpmn:flowNodeRef></bpmn:lane>
</bpmn:laneSet>
<bpmn:startEvent id="start" />
<bpmn:userTask id="fill" name="填写请假单"><bpmn:extensionElements>
  <spiffworkflow:instructionsForEndUser>填写请假天数</spiffworkflow:instructionsForEndUser>
  <spiffworkflow:properties><spiffworkflow:property name="formJsonSchemaFilename" value="leave_fill.json" />
  </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
<bpmn:userTask id="review" name="负责人审核"><bpmn:extensionElements>
  <spiffworkflow:instructionsForEndUser>审核请假</spiffworkflow:instructionsForEndUser>
  <spiffworkflow:properties><spiffworkflow:property name="formJsonSchemaFilename" value="leave_review_own.json" />
  </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
<bpmn:exclusiveGateway id="outcome" default="f_back" />
<bpmn:endEvent id="done" />
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fill" />
<bpmn:sequenceFlow id="f2" sourceRef="fill" targetRef="review" />
<bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="outcome" />
<bpmn:sequenceFlow id="f_ok" sourceRef="outcome" targetRef="done">
  <bpmn:conditionExpression>decision == "approve"</bpmn:conditionExpression></bpmn:sequenceFlow>
<bpmn:sequenceFlow id="f_back" sourceRef="outcome" targetRef="fill" />
</bpmn:process>
</bpmn:definitions>
"""

FILL = {"type": "object", "title": "请假单", "required": ["days"],
        "properties": {"days": {"type": "integer", "title": "天数", "minimum": 1}}}
REVIEW = {"type": "object", "title": "审核", "required": ["decision"],
          "properties": {"decision": {"type": "string", "title": "结论", "enum": ["approve", "return"]},
                         "opinion": {"type": "string", "title": "意见"}}}
REASON = "请补充证明材料"


def _deploy(designer) -> None:
    files = [(io.BytesIO(LEAVE.encode()), "studio_leave.bpmn"),
             (io.BytesIO(json.dumps(FILL).encode()), "leave_fill.json"),
             (io.BytesIO(json.dumps(REVIEW).encode()), "leave_review_own.json")]
    r = designer.client.post("/api/v1/process-definitions", data={"files": files},
                             content_type="multipart/form-data", headers=designer._headers())
    assert r.status_code == 201, r.get_json()


def _task(api, instance_id: int) -> dict:
    (task,) = api.get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["items"]
    return task


def test_a_return_reason_of_a_studio_form_is_kept_and_shown_to_the_applicant(login, browser):  # noqa: F811
    _deploy(login("office_admin"))
    clerk, head = login("clerk"), login("office_head")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "studio_leave"}).get_json()
    fill = _task(clerk, instance["id"])
    assert clerk.post(f"/api/v1/tasks/{fill['id']}/complete", json={"data": {"days": 5}}).status_code == 200
    review = _task(head, instance["id"])
    r = head.post(f"/api/v1/tasks/{review['id']}/complete",
                  json={"data": {"decision": "return", "opinion": REASON}})
    assert r.status_code == 200, r.get_json()

    history = clerk.get(f"/api/v1/process-instances/{instance['id']}").get_json()["history"]
    (step,) = [h for h in history if h["element_id"] == "review"]
    assert step["decision"] == "return" and step["opinion"] == REASON, step
    assert step["user"] == "office_head"

    back = _task(clerk, instance["id"])
    assert back["element_id"] == "fill"
    page = text(browser("clerk").get(f"/tasks/{back['id']}"))
    assert REASON in page and "负责人审核" in page
    record = text(browser("clerk").get(f"/requests/{instance['id']}"))
    assert REASON in record
