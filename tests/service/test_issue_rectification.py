"""Inspection problems and their rectification through the HTTP API (R-SEC-9, R-SUP-1, R-OPS-3):
recorded with severity, responsible department and deadline → rectified by the department → re-checked
(pass, or back with notes) → closed; overdue work escalates to the department head, then to the
supervision group. Another procedure may start a rectification with the message rectification_required."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.scheduler import run_due
from tests.conftest import PASSWORD
from tests.service.flows import complete as _complete

RECORD = {"category": "security", "problem": "财务处多人共用一个账号登录,未按人开通", "evidence": "抽查 12 月 1 日登录日志",
          "severity": "medium", "department": "FIN", "deadline": "2026-12-08T18:00:00+08:00"}
# The department's task and the deadline timer attached to it.
RECTIFYING = ["rectify"]
RECTIFIED = {"rectification_plan": "一周内为每人单独开通账号", "rectification_measures": "停用共用账号,逐人申请开通",
             "rectification_result": "共用账号已停用,5 人已单独开通", "responsible_person": "王会计"}


@pytest.fixture
def inspector(app, org):
    """An inspector of the supervision office (functional group inspector)."""
    from service import org as org_module

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "inspector", PASSWORD, "HQ", groups=["inspector"], full_name="赵检查")
        s.commit()
        s.close()
    return "inspector"


def _tasks(api, **params):
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _only_task(api, **params):
    items = _tasks(api, **params)
    assert len(items) == 1, items
    return items[0]


def _record(login, who="inspector", **changes):
    api = login(who)
    r = api.post("/api/v1/process-instances", json={"process_key": "issue_rectification", "business_key": "INS-1"})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "record_problem"
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["severity"]["oneOf"] == [
        {"const": "low", "title": "一般"}, {"const": "medium", "title": "较重"}, {"const": "high", "title": "严重"}]
    return instance_id, _complete(api, task, dict(RECORD, **changes))


def _rectify(login, instance_id, who, element="rectify"):
    api = login(who)
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == element
    return _complete(api, task, RECTIFIED)


def _recheck(login, instance_id, who="inspector", **data):
    api = login(who)
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "recheck"
    return _complete(api, task, {"recheck_result": "pass", "recheck_notes": "现场核查,已整改到位", **data})


def test_problem_is_rectified_by_the_department_and_closed_after_recheck(login, inspector, frozen):
    """R-SEC-9, R-SUP-1: the responsible department's administrator rectifies before the deadline and the
    inspector re-checks and closes the problem."""
    instance_id, result = _record(login)
    assert result["active_elements"] == RECTIFYING
    department = login("fin_admin")
    task = _only_task(department, instance_id=instance_id)
    assert task["due_at"].startswith("2026-12-08T10:00")  # 18:00 Beijing time
    assert "共用一个账号" in task["instructions"] and "较重" in task["instructions"]
    assert _tasks(login("office_admin"), instance_id=instance_id) == []
    _complete(department, task, RECTIFIED)

    recheck = _only_task(login("inspector"), instance_id=instance_id)
    assert recheck["candidates"] == {"users": ["inspector"], "groups": ["supervisor"]}
    assert "5 人已单独开通" in recheck["instructions"]
    result = _recheck(login, instance_id)
    assert result["state"] == "completed" and "end_closed" in result["completed_elements"]
    assert [(h["element_id"], h["user"]) for h in result["history"] if h["kind"] == "UserTask"] == [
        ("record_problem", "inspector"), ("rectify", "fin_admin"), ("recheck", "inspector")]


def test_recheck_sends_incomplete_rectification_back_with_notes_and_a_new_deadline(login, inspector, frozen):
    """R-SEC-9: a rectification that is not complete goes back to the department with the inspector's
    notes and a new deadline; the problem closes after the second re-check."""
    instance_id, _ = _record(login)
    _rectify(login, instance_id, "fin_admin")
    api = login("inspector")
    task = _only_task(api, instance_id=instance_id)
    body = _complete(api, task, {"recheck_result": "return", "recheck_notes": "仍有 1 人使用共用账号"}, status=422)
    assert [d["field"] for d in body["details"]] == ["new_deadline"]
    _complete(api, task, {"recheck_result": "return", "recheck_notes": "仍有 1 人使用共用账号",
                          "new_deadline": "2026-12-15T18:00:00+08:00"})
    again = _only_task(login("fin_admin"), instance_id=instance_id)
    assert again["element_id"] == "rectify" and again["due_at"].startswith("2026-12-15T10:00")
    assert "仍有 1 人使用共用账号" in again["instructions"]
    _complete(login("fin_admin"), again, RECTIFIED)
    result = _recheck(login, instance_id)
    assert result["state"] == "completed"
    assert [h["element_id"] for h in result["history"]].count("rectify") == 2


def test_overdue_rectification_escalates_to_the_department_head(app, login, inspector, frozen):
    """R-SEC-9, R-OPS-3: past the deadline the rectification is withdrawn from the department's
    administrator and goes to the department head, once."""
    instance_id, _ = _record(login)
    frozen.current = datetime(2026, 12, 8, 9, 59, tzinfo=UTC)
    assert run_due(app) == 0
    frozen.current = datetime(2026, 12, 8, 10, 1, tzinfo=UTC)
    assert run_due(app) >= 1
    assert _tasks(login("fin_admin"), instance_id=instance_id) == []
    head = login("fin_head")
    task = _only_task(head, instance_id=instance_id)
    assert task["element_id"] == "rectify_by_head"
    assert task["due_at"].startswith("2026-12-11T10:01")  # 较重: three more days
    assert "已逾期" in task["instructions"]
    assert "task" in {n["kind"] for n in head.get("/api/v1/notifications").get_json()["items"]}
    _complete(head, task, RECTIFIED)
    result = _recheck(login, instance_id)
    assert result["state"] == "completed"
    assert result["completed_elements"].count("rectify_overdue") == 1
    assert "rectify_supervised" not in result["completed_elements"]


def test_still_overdue_rectification_escalates_to_the_supervision_group(app, login, inspector, frozen):
    """R-SEC-9, R-SUP-1: a severe problem still open one day after it reached the department head goes to
    the supervision group; each escalation happens once, and the supervisors may also re-check."""
    instance_id, _ = _record(login, severity="high")
    frozen.current = datetime(2026, 12, 8, 10, 1, tzinfo=UTC)
    run_due(app)
    assert _only_task(login("fin_head"), instance_id=instance_id)["element_id"] == "rectify_by_head"
    frozen.advance(hours=23, minutes=58)
    assert run_due(app) == 0
    frozen.advance(minutes=3)
    assert run_due(app) >= 1
    assert _tasks(login("fin_head"), instance_id=instance_id) == []
    supervisor = login("supervisor")
    task = _only_task(supervisor, instance_id=instance_id)
    assert task["element_id"] == "rectify_supervised" and task["candidates"]["groups"] == ["supervisor"]
    frozen.advance(days=30)
    run_due(app)
    _complete(supervisor, task, RECTIFIED)
    result = _recheck(login, instance_id, who="supervisor")
    assert result["state"] == "completed"
    assert result["completed_elements"].count("rectify_overdue") == 1
    assert result["completed_elements"].count("head_overdue") == 1
    assert [(h["element_id"], h["user"]) for h in result["history"] if h["kind"] == "UserTask"] == [
        ("record_problem", "inspector"), ("rectify_supervised", "supervisor"), ("recheck", "supervisor")]


@pytest.mark.parametrize("changes, words", [
    ({"department": "HQ"}, "没有在岗的部门管理员"),
    ({"deadline": "2026-11-30T18:00:00+08:00"}, "已经过去"),
])
def test_registration_that_cannot_be_acted_on_goes_back_to_the_recorder(login, inspector, frozen, changes, words):
    """R-SEC-9: a problem is only assigned to an existing department with an administrator and a future
    deadline; otherwise the inspector corrects the record."""
    instance_id, result = _record(login, **changes)
    assert result["active_elements"] == ["record_problem"]
    api = login("inspector")
    task = _only_task(api, instance_id=instance_id)
    assert words in task["instructions"]
    result = _complete(api, task, RECORD)
    assert result["active_elements"] == RECTIFYING


def test_a_department_that_does_not_exist_is_refused_by_the_form(login, inspector, frozen):
    """R-SEC-9, issue 17: the department field (`format: department`) names an existing department."""
    api = login("inspector")
    instance = api.post("/api/v1/process-instances", json={"process_key": "issue_rectification"}).get_json()
    body = _complete(api, _only_task(api, instance_id=instance["id"]), dict(RECORD, department="NOPE"), status=422)
    assert [(d["field"], "不存在" in d["message"]) for d in body["details"]] == [("department", True)]


def test_deadline_needs_a_time_zone(login, inspector, frozen):
    """R-SEC-9: a deadline without time zone would be read in the server's zone; the form refuses it."""
    api = login("inspector")
    instance = api.post("/api/v1/process-instances", json={"process_key": "issue_rectification"}).get_json()
    body = _complete(api, _only_task(api, instance_id=instance["id"]), dict(RECORD, deadline="2026-12-08T18:00:00"),
                     status=422)
    assert {d["field"] for d in body["details"]} == {"deadline"}


def test_only_inspectors_and_supervisors_record_problems(login, inspector, frozen):
    """R-SUP-1, R-ACC-3: anybody else's record ends without assigning work to a department; a member
    of the supervision group may record."""
    instance_id, result = _record(login, who="clerk")
    assert result["state"] == "completed" and "end_refused" in result["completed_elements"]
    assert _tasks(login("fin_admin"), instance_id=instance_id) == []
    _, result = _record(login, who="supervisor")
    assert result["active_elements"] == RECTIFYING


@pytest.mark.parametrize("who", ["office_admin", "fin_head", "clerk"])
def test_only_the_responsible_departments_administrator_rectifies(login, inspector, frozen, who):
    """R-SEC-9, R-SEC-10: another department, the head (before escalation) or a clerk cannot rectify."""
    instance_id, _ = _record(login)
    task = _only_task(login("fin_admin"), instance_id=instance_id)
    r = login(who).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": RECTIFIED})
    assert r.status_code == 403


def test_the_department_cannot_recheck_its_own_rectification(login, inspector, frozen):
    """R-SEC-9, R-SEC-10: the re-check belongs to the inspector (or the supervision group)."""
    instance_id, _ = _record(login)
    _rectify(login, instance_id, "fin_admin")
    task = _only_task(login("inspector"), instance_id=instance_id)
    for who in ("fin_admin", "fin_head"):
        r = login(who).post(f"/api/v1/tasks/{task['id']}/complete",
                            json={"data": {"recheck_result": "pass", "recheck_notes": "自查合格"}})
        assert r.status_code == 403


MESSAGE = {"department": "OFFICE", "problem": "2026年第4季度考核基本合格:文件处理及时率偏低,请于 2027-01-31 前完成整改。",
           "severity": "low", "deadline": "2027-01-31T23:59:59+08:00"}


def test_rectification_required_message_starts_a_rectification(login, frozen):
    """R-SUP-5, R-SEC-9: the quarterly assessment (or an administrator) starts a rectification with the
    message rectification_required; no inspector records it, the supervision group re-checks."""
    r = login("sysadmin").post("/api/v1/messages", json={"name": "rectification_required", "payload": MESSAGE})
    assert r.status_code == 200, r.get_json()
    started = r.get_json()
    assert started["process_key"] == "issue_rectification" and started["active_elements"] == RECTIFYING
    assert "start_by_message" in started["completed_elements"]
    assert "record_problem" not in started["completed_elements"]
    department = login("office_admin")
    task = _only_task(department, instance_id=started["id"])
    assert task["due_at"].startswith("2027-01-31T15:59:59")
    data = department.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]
    assert {k: data[k] for k in MESSAGE} == MESSAGE and data["escalation_after"] == "P5D"
    _complete(department, task, RECTIFIED)
    result = _recheck(login, started["id"], who="supervisor")
    assert result["state"] == "completed" and "end_closed" in result["completed_elements"]


def test_rectification_request_that_cannot_be_assigned_is_an_incident(login, frozen):
    """R-SEC-9: a message naming no valid department stops at the registration with an incident for the
    administrators, instead of waiting in nobody's task list."""
    r = login("sysadmin").post("/api/v1/messages", json={"name": "rectification_required",
                                                         "payload": dict(MESSAGE, department="NOPE")})
    assert r.status_code == 200, r.get_json()
    started = r.get_json()
    assert started["state"] == "error"
    assert started["incidents"][0]["element"] == "register_task"
    assert "NOPE" in started["incidents"][0]["message"]
