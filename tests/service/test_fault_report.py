"""Fault reports through the HTTP API (R-OPS-3): report → triage → handle within the time limit →
reporter confirms → closed; every record keeps time, symptom, handling and result."""
from __future__ import annotations

import pytest

from service.scheduler import run_due
from tests.service.flows import complete as _complete
from tests.service.flows import only_task as _only_task

REPORT = {"occurred_at": "2026-12-01T08:30:00+08:00", "affected_area": "process",
          "symptom": "提交审批时页面提示“服务器错误”", "impact": "办公室全体无法提交审批", "contact_phone": "13800000001"}
HANDLED = {"handling_process": "重启流程服务并清理锁表", "handling_result": "审批提交恢复正常",
           "root_cause": "数据库连接池耗尽", "resolved_at": "2026-12-01T10:00:00+08:00"}


def _report(login, who="clerk"):
    api = login(who)
    r = api.post("/api/v1/process-instances", json={"process_key": "fault_report"})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "report_fault"
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["symptom"]["title"] == "故障现象"
    _complete(api, task, REPORT)
    return instance_id


def _triage(login, instance_id, **data):
    api = login("platform")
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "triage_fault"
    return _complete(api, task, {"triage_action": "handle", "severity": "general", "diagnosis": "疑似数据库连接问题",
                                 **data})


def _handle(login, instance_id, who="platform"):
    api = login(who)
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "handle_fault"
    assert api.post(f"/api/v1/tasks/{task['id']}/claim").status_code == 200
    return _complete(api, task, HANDLED)


def test_fault_is_triaged_handled_within_the_limit_and_confirmed(login):
    """R-OPS-3: the platform triages, handles within the time limit and the reporter confirms; the record
    keeps time, symptom, handling and result."""
    instance_id = _report(login)
    _triage(login, instance_id, severity="major")
    handler = login("sysadmin")  # any member of the platform management department may take it
    task = _only_task(handler, instance_id=instance_id)
    assert task["candidates"]["groups"] == ["platform_admin"]
    assert task["due_at"] is not None and task["overdue"] is False
    assert handler.post(f"/api/v1/tasks/{task['id']}/claim").status_code == 200
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0
    _complete(handler, task, HANDLED)

    reporter = login("clerk")
    confirm = _only_task(reporter, instance_id=instance_id)
    assert confirm["element_id"] == "confirm_fix" and "审批提交恢复正常" in confirm["instructions"]
    record = reporter.get(f"/api/v1/tasks/{confirm['id']}").get_json()["data"]
    assert {k: record[k] for k in ("occurred_at", "symptom", "handling_process", "handling_result", "resolved_at")} == {
        "occurred_at": REPORT["occurred_at"], "symptom": REPORT["symptom"], **{
            k: HANDLED[k] for k in ("handling_process", "handling_result", "resolved_at")}}
    assert record["severity"] == "major" and record["time_limit"] == "PT8H"
    result = _complete(reporter, confirm, {"confirmation": "resolved"})
    assert result["state"] == "completed" and "end_closed" in result["completed_elements"]
    assert [(h["element_id"], h["user"]) for h in result["history"] if h["kind"] == "UserTask"] == [
        ("report_fault", "clerk"), ("triage_fault", "platform"), ("handle_fault", "sysadmin"),
        ("confirm_fix", "clerk")]


def test_triage_dismisses_what_is_not_a_platform_fault(login):
    """R-OPS-3: a report that is not a platform fault is closed at triage with the diagnosis."""
    instance_id = _report(login)
    result = _triage(login, instance_id, triage_action="dismiss", diagnosis="本地网络故障,已告知报告人联系信息中心")
    assert result["state"] == "completed" and "end_dismissed" in result["completed_elements"]
    assert "handle_fault" not in result["completed_elements"]


def test_triage_to_handle_needs_a_severity(login):
    """R-OPS-3: the time limit follows from the severity, so handling cannot be accepted without one."""
    instance_id = _report(login)
    api = login("platform")
    body = _complete(api, _only_task(api, instance_id=instance_id),
                     {"triage_action": "handle", "diagnosis": "待查"}, status=422)
    assert [d["field"] for d in body["details"]] == ["severity"]


def test_reporter_says_not_resolved_and_handling_resumes(login):
    """R-OPS-3: an unresolved fault goes back to the platform with the reporter's comment."""
    instance_id = _report(login)
    _triage(login, instance_id)
    _handle(login, instance_id)
    reporter = login("clerk")
    confirm = _only_task(reporter, instance_id=instance_id)
    body = _complete(reporter, confirm, {"confirmation": "not_resolved"}, status=422)
    assert [d["field"] for d in body["details"]] == ["reporter_comment"]
    _complete(reporter, confirm, {"confirmation": "not_resolved", "reporter_comment": "下午又出现同样提示"})
    task = _only_task(login("platform"), instance_id=instance_id)
    assert task["element_id"] == "handle_fault" and "下午又出现同样提示" in task["instructions"]
    _handle(login, instance_id)
    result = _complete(reporter, _only_task(reporter, instance_id=instance_id), {"confirmation": "resolved"})
    assert result["state"] == "completed"
    assert [h["element_id"] for h in result["history"]].count("handle_fault") == 2


def test_handling_past_the_time_limit_escalates_to_the_supervision_group_once(app, login, frozen):
    """R-OPS-3: a critical fault not handled within 4 hours is flagged overdue and reported to the
    supervision group, exactly once; the platform's technicians keep the task."""
    instance_id = _report(login)
    _triage(login, instance_id, severity="critical", emergency_plan=True)
    platform = login("platform")
    task = _only_task(platform, instance_id=instance_id)
    assert task["due_at"].startswith("2026-12-01T05:00")
    assert "应急预案" in task["instructions"]

    frozen.advance(hours=3, minutes=59)
    assert run_due(app) == 0
    frozen.advance(minutes=2)
    assert run_due(app) >= 1
    state = platform.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert state["active_elements"] == ["handle_fault"]
    assert state["completed_elements"].count("handle_overdue") == 1
    assert "notify_supervisors" in state["completed_elements"] and "end_escalated" in state["completed_elements"]
    still = _only_task(platform, instance_id=instance_id)
    assert still["id"] == task["id"] and still["overdue"] is True
    notes = login("supervisor").get("/api/v1/notifications").get_json()["items"]
    escalations = [n for n in notes if n["kind"] == "escalation"]
    assert len(escalations) == 1 and escalations[0]["instance_id"] == instance_id
    assert "故障处理超时" in escalations[0]["message"]
    assert "overdue" in {n["kind"] for n in platform.get("/api/v1/notifications").get_json()["items"]}

    frozen.advance(days=2)
    assert run_due(app) == 0
    _handle(login, instance_id)
    reporter = login("clerk")
    result = _complete(reporter, _only_task(reporter, instance_id=instance_id), {"confirmation": "resolved"})
    assert result["state"] == "completed"
    assert result["completed_elements"].count("handle_overdue") == 1
    assert [n["kind"] for n in login("supervisor").get("/api/v1/notifications").get_json()["items"]].count(
        "escalation") == 1


def test_unconfirmed_fix_closes_itself_after_three_days(app, login, frozen):
    """R-OPS-3: a reporter who never confirms does not keep the record open; it closes after 3 days."""
    instance_id = _report(login)
    _triage(login, instance_id)
    _handle(login, instance_id)
    frozen.advance(days=2, hours=23)
    assert run_due(app) == 0
    frozen.advance(hours=2)
    assert run_due(app) >= 1
    state = login("clerk").get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert state["state"] == "completed"
    assert "end_auto_closed" in state["completed_elements"] and "confirm_fix" not in state["completed_elements"]
    assert login("clerk").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0


@pytest.mark.parametrize("who", ["clerk", "office_admin", "supervisor"])
def test_only_the_platform_management_department_triages(login, who):
    """R-OPS-3, R-SEC-10: triage and handling belong to the platform management department."""
    instance_id = _report(login)
    task = _only_task(login("platform"), instance_id=instance_id)
    r = login(who).post(f"/api/v1/tasks/{task['id']}/complete",
                        json={"data": {"triage_action": "dismiss", "diagnosis": "无"}})
    assert r.status_code == 403
