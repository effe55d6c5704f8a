"""A department designer's diagram cannot freeze the platform (issue 13, R-SEC-2): designer code runs
in worker processes with hard limits, a runaway ends as an incident naming its element within
seconds, and the platform keeps running scripts; bounds that can be checked at deploy are."""
from __future__ import annotations

import io
import time

import pytest

from tests.service.diagrams import script_process, wait_process

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs" '
        'targetNamespace="http://inkless">\n')


def _upload(api, *files: tuple[str, bytes]):
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    return api.client.post("/api/v1/process-definitions", data=data, content_type="multipart/form-data",
                           headers=api._headers())


def _deploy(api, key: str, content: bytes) -> None:
    r = _upload(api, (f"{key}.bpmn", content))
    assert r.status_code == 201, r.get_json()


def _reach_script(clerk, key: str):
    """Start `key` (a script_process) and submit its first task; the script runs in that request."""
    instance = clerk.post("/api/v1/process-instances", json={"process_key": key}).get_json()
    task = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    began = time.monotonic()
    r = clerk.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"value": 1}})
    return r, time.monotonic() - began, instance["id"]


def _only_lane(key: str, body: str, ids: list[str]) -> bytes:
    refs = "".join(f"<bpmn:flowNodeRef>{i}</bpmn:flowNodeRef>" for i in ids)
    return (HEAD + f'<bpmn:process id="{key}" name="隔离测试" isExecutable="true">'
            f'<bpmn:laneSet id="ls"><bpmn:lane id="lane" name="initiator">{refs}</bpmn:lane></bpmn:laneSet>\n'
            + body + "</bpmn:process>\n</bpmn:definitions>\n").encode()


@pytest.mark.parametrize(("script", "kind"), [
    ("x = 10**10**10", "timeout"),
    ("x = math.factorial(10**7)", "timeout"),
    ("x = '%*d' % (10**9, 1)", "memory"),
    ("x = 'x' * 10**10", "memory"),
    ("try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass", "timeout"),
    ("x = 'y' * (2 * 1024 * 1024)", "limit"),
])
def test_runaway_script_ends_in_an_incident_and_the_next_script_runs(login, script, kind):
    """Issue 13: work in C, endless loops past `finally` and huge allocations are stopped by the
    worker's hard limits; the instance is in error with an incident naming the script task."""
    designer = login("office_admin")
    _deploy(designer, "runaway", script_process("runaway", script))
    _deploy(designer, "healthy", script_process("healthy", "answer = value * 42"))
    clerk = login("clerk")
    r, elapsed, instance_id = _reach_script(clerk, "runaway")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["state"] == "error"
    (incident,) = body["incidents"]
    assert incident["element"] == "run_script" and incident["kind"] == kind, incident
    assert elapsed < 5, f"the step took {elapsed:.1f} s"
    again = clerk.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert again["state"] == "error" and again["incidents"][0]["element"] == "run_script"
    # The killed worker was replaced: the next script, in another instance, runs as usual.
    r, elapsed, _ = _reach_script(clerk, "healthy")
    assert r.get_json()["state"] == "completed", r.get_json()
    assert elapsed < 5


def test_runaway_gateway_condition_is_an_incident_on_the_gateway(login):
    body = ('<bpmn:startEvent id="start" />'
            '<bpmn:userTask id="prepare" name="准备"><bpmn:extensionElements><spiffworkflow:instructionsForEndUser>'
            "准备</spiffworkflow:instructionsForEndUser></bpmn:extensionElements></bpmn:userTask>"
            '<bpmn:exclusiveGateway id="decide" default="to_small" />'
            '<bpmn:endEvent id="big" /><bpmn:endEvent id="small" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="decide" />'
            '<bpmn:sequenceFlow id="to_big" sourceRef="decide" targetRef="big">'
            "<bpmn:conditionExpression>pow(3, 10**9) &gt; value</bpmn:conditionExpression></bpmn:sequenceFlow>"
            '<bpmn:sequenceFlow id="to_small" sourceRef="decide" targetRef="small" />\n')
    designer = login("office_admin")
    _deploy(designer, "condition", _only_lane("condition", body, ["start", "prepare", "decide", "big", "small"]))
    r, elapsed, _ = _reach_script(login("clerk"), "condition")
    result = r.get_json()
    assert result["state"] == "error"
    assert result["incidents"][0]["element"] == "decide" and result["incidents"][0]["kind"] == "timeout"
    assert elapsed < 5


def test_instructions_that_overrun_are_an_incident_on_the_task(login):
    """A template loop over data (not detectable at deploy) is stopped at run time."""
    template = "{% for i in rows %}{% for j in rows %}{% for k in rows %}.{% endfor %}{% endfor %}{% endfor %}"
    body = ('<bpmn:startEvent id="start" />'
            '<bpmn:userTask id="prepare" name="准备"><bpmn:extensionElements><spiffworkflow:instructionsForEndUser>'
            "准备</spiffworkflow:instructionsForEndUser></bpmn:extensionElements></bpmn:userTask>"
            '<bpmn:scriptTask id="make_rows" name="生成"><bpmn:script>rows = list(range(100000))</bpmn:script>'
            "</bpmn:scriptTask>"
            '<bpmn:userTask id="read" name="阅读"><bpmn:extensionElements><spiffworkflow:instructionsForEndUser>'
            f"{template}</spiffworkflow:instructionsForEndUser></bpmn:extensionElements></bpmn:userTask>"
            '<bpmn:endEvent id="end" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="make_rows" />'
            '<bpmn:sequenceFlow id="f3" sourceRef="make_rows" targetRef="read" />'
            '<bpmn:sequenceFlow id="f4" sourceRef="read" targetRef="end" />\n')
    designer = login("office_admin")
    _deploy(designer, "reading", _only_lane("reading", body, ["start", "prepare", "make_rows", "read", "end"]))
    clerk = login("clerk")
    r, elapsed, instance_id = _reach_script(clerk, "reading")
    result = r.get_json()
    assert result["state"] == "error", result
    incident = result["incidents"][0]
    assert incident["element"] == "read" and incident["kind"] == "timeout"
    assert elapsed < 5
    # Nobody is handed a task whose instructions cannot be shown.
    assert clerk.get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["items"] == []


# -- refused at deploy ---------------------------------------------------------------------------------


def _refused(api, key: str, content: bytes, element: str) -> str:
    began = time.monotonic()
    r = _upload(api, (f"{key}.bpmn", content))
    assert time.monotonic() - began < 3
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["code"] == "invalid_diagram"
    mine = [d for d in body["details"] if d["element"] == element]
    assert mine, body
    return mine[0]["message"]


def test_timer_past_the_horizon_is_refused_at_deploy(login):
    """'P99999999Y' used to deploy, then keep a request busy adding a billion months."""
    message = _refused(login("office_admin"), "far", wait_process("far", "P99999999Y"), "wait")
    assert "100 年" in message


def test_timer_past_the_horizon_is_refused_in_english_too(login):
    api = login("office_admin")
    r = api.client.post("/api/v1/process-definitions", query_string={"lang": "en"},
                        data={"files": [(io.BytesIO(wait_process("far", "P99999999Y")), "far.bpmn")]},
                        content_type="multipart/form-data", headers=api._headers())
    assert r.status_code == 422
    assert "100 years" in r.get_json()["details"][0]["message"]


def test_call_activity_calling_its_own_process_is_refused_at_deploy(login):
    body = ('<bpmn:startEvent id="start" /><bpmn:callActivity id="again" name="再来一次" calledElement="loop" />'
            '<bpmn:endEvent id="end" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="again" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="again" targetRef="end" />\n')
    message = _refused(login("office_admin"), "loop", _only_lane("loop", body, ["start", "again", "end"]), "again")
    assert "自身" in message


@pytest.mark.parametrize(("due", "words"), [("10 +", "办理期限"), ("&quot;P99999999Y&quot;", "100 年")])
def test_due_property_is_checked_at_deploy(login, due, words):
    body = ('<bpmn:startEvent id="start" />'
            '<bpmn:userTask id="approve" name="审批"><bpmn:extensionElements>'
            "<spiffworkflow:instructionsForEndUser>审批</spiffworkflow:instructionsForEndUser>"
            f'<spiffworkflow:properties><spiffworkflow:property name="due" value="{due}" /></spiffworkflow:properties>'
            "</bpmn:extensionElements></bpmn:userTask><bpmn:endEvent id=\"end\" />"
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="end" />\n')
    message = _refused(login("office_admin"), "due", _only_lane("due", body, ["start", "approve", "end"]), "approve")
    assert words in message


def test_template_loop_over_a_huge_literal_range_is_refused_at_deploy(login):
    template = "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}"
    body = ('<bpmn:startEvent id="start" />'
            '<bpmn:userTask id="read" name="阅读"><bpmn:extensionElements><spiffworkflow:instructionsForEndUser>'
            f"{template}</spiffworkflow:instructionsForEndUser></bpmn:extensionElements></bpmn:userTask>"
            '<bpmn:endEvent id="end" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="read" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="read" targetRef="end" />\n')
    message = _refused(login("office_admin"), "tpl", _only_lane("tpl", body, ["start", "read", "end"]), "read")
    assert "10,000,000,000" in message


def _due_process(key: str, due: str) -> bytes:
    """start → prepare (sets `n`) → approve (user task whose `due` reads `n`) → end."""
    body = ('<bpmn:startEvent id="start" />'
            '<bpmn:userTask id="prepare" name="准备"><bpmn:extensionElements>'
            "<spiffworkflow:instructionsForEndUser>准备</spiffworkflow:instructionsForEndUser>"
            "</bpmn:extensionElements></bpmn:userTask>"
            '<bpmn:userTask id="approve" name="审批"><bpmn:extensionElements>'
            "<spiffworkflow:instructionsForEndUser>审批</spiffworkflow:instructionsForEndUser>"
            f'<spiffworkflow:properties><spiffworkflow:property name="due" value="{due}" /></spiffworkflow:properties>'
            '</bpmn:extensionElements></bpmn:userTask><bpmn:endEvent id="end" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="approve" />'
            '<bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="end" />\n')
    return _only_lane(key, body, ["start", "prepare", "approve", "end"])


@pytest.mark.parametrize(("value", "due", "kind"), [
    (10, "&quot;P%dD&quot; % (value ** value ** value)", "timeout"),
    (99999999, "&quot;P%dY&quot; % value", "limit"),
])
def test_due_expression_that_overruns_at_run_time_is_an_incident_and_the_task_stays_open(login, value, due, kind):
    """Issue 13, R-WF-2: a `due` expression that only overruns with the data it meets at run time
    (work in C past the time limit; a duration computed past the 100-year horizon) neither freezes
    the step nor loops month by month: the task opens without a due date, the instance records an
    incident naming the task, and the task can be completed."""
    designer = login("office_admin")
    _deploy(designer, "due_runtime", _due_process("due_runtime", due))
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "due_runtime"}).get_json()
    task = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    began = time.monotonic()
    r = clerk.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"value": value}})
    elapsed = time.monotonic() - began
    assert r.status_code == 200, r.get_json()
    assert elapsed < 5, f"the step took {elapsed:.1f} s"
    body = clerk.get(f"/api/v1/process-instances/{instance['id']}").get_json()
    assert body["state"] == "running"
    (incident,) = body["incidents"]
    assert incident["element"] == "approve" and incident["kind"] == kind, incident
    (approve,) = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"]
    assert approve["element_id"] == "approve" and approve.get("due_at") is None, approve
    done = clerk.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {}})
    assert done.status_code == 200 and done.get_json()["state"] == "completed", done.get_json()
