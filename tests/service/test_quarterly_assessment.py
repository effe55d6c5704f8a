"""The quarterly assessment procedure through the HTTP API, along every path (R-SUP-3, R-SUP-4, R-SUP-5).

quarterly_assessment.bpmn: a quarterly timer (or a supervisor, for a spot check) starts it → the
platform computes the four indicators per department → every department head comments (parallel
multi-instance) → the supervision group scores every department and assessment_grade.dmn grades it
→ the results are published → each department below the bar gets an issue_rectification instance,
started by the message `rectification_required`.

The clock is frozen in the fourth quarter of 2026 before the organisation is created, so the users
exist during the quarter that is assessed.
"""
from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine import clock
from service import scheduler
from service.models import AuditEvent, OpenTask, ProcessDefinition, ProcessInstance
from service.scheduler import run_due
from service.workflows import process_for

KEY = "quarterly_assessment"
HEADS = {"FIN": "fin_head", "OFFICE": "office_head", "PLATFORM": "platform"}
ASSESSED = ["FIN", "HQ", "OFFICE", "PLATFORM"]  # every department with an active user; HQ has no head

# A stand-in for issue_rectification.bpmn, deployed only when the real one is not (yet) in
# process_models/: it starts on `rectification_required` and keeps the payload under `request`.
STAND_IN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_stand_in" targetNamespace="http://inkless">
  <bpmn:message id="msg_rectification_required" name="rectification_required" />
  <bpmn:process id="issue_rectification" name="\xe9\x97\xae\xe9\xa2\x98\xe6\x95\xb4\xe6\x94\xb9" isExecutable="true">
    <bpmn:laneSet id="ls_stand_in">
      <bpmn:lane id="lane_stand_in" name="supervisor">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>rectify</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start">
      <bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="med_stand_in" messageRef="msg_rectification_required">
        <bpmn:extensionElements><spiffworkflow:messageVariable>request</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="rectify" name="rectify">
      <bpmn:extensionElements><spiffworkflow:instructionsForEndUser>{{ request.problem }}</spiffworkflow:instructionsForEndUser></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="rectify" />
    <bpmn:sequenceFlow id="f2" sourceRef="rectify" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def frozen():
    fake = clock.FrozenClock(datetime(2026, 11, 16, 2, 0, tzinfo=UTC))  # 10:00 Beijing time, Q4
    clock.set_provider(fake)
    yield fake
    clock.set_provider(None)


def _db(app):
    return app.extensions["inkless.db"]()


def _tasks(api, **params):
    # By instance when given: the scoring tasks live in an embedded subprocess, and open_tasks
    # records those under the subprocess's id (engine/runtime.py reads the key from the task's own
    # workflow spec), not under quarterly_assessment.
    r = api.get("/api/v1/tasks", query_string=params if "instance_id" in params else {"process_key": KEY, **params})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _complete(api, task_id, data, status=200):
    r = api.post(f"/api/v1/tasks/{task_id}/complete", json={"data": data})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _task_data(api, task_id):
    r = api.get(f"/api/v1/tasks/{task_id}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _some_activity(login):
    """Q4 activity: the office starts an account application that its head approves."""
    admin = login("office_admin")
    r = admin.post("/api/v1/process-instances", json={"process_key": "account_application"})
    assert r.status_code == 201, r.get_json()
    task = admin.get("/api/v1/tasks", query_string={"instance_id": r.get_json()["id"]}).get_json()["items"][0]
    _complete(admin, task["id"], {"full_name": "马小云", "username": "maxy", "phone": "13800000000",
                                  "email": "maxy@example.org", "department": "OFFICE", "post": "档案管理员",
                                  "roles": ["user"], "groups": [], "reason": "新入职"})
    head = login("office_head")
    task = head.get("/api/v1/tasks", query_string={"instance_id": r.get_json()["id"]}).get_json()["items"][0]
    _complete(head, task["id"], {"decision": "approve", "opinion": "同意"})


def _start_by_hand(login, period="2026-Q4"):
    supervisor = login("supervisor")
    r = supervisor.post("/api/v1/process-instances", json={"process_key": KEY})
    assert r.status_code == 201, r.get_json()
    instance = r.get_json()
    assert instance["active_elements"] == ["choose_period"]
    (task,) = _tasks(supervisor, instance_id=instance["id"])
    detail = _task_data(supervisor, task["id"])
    assert "2026-Q4" in detail["instructions"]  # the default: the quarter that just ended
    assert detail["form"]["properties"]["period"]["title"] == "考核季度"
    _complete(supervisor, task["id"], {"period": period, "reason": "不定期抽查"})
    return instance["id"]


def _comment_all(login, instance_id):
    """Each department head sees exactly their own department's comment task (R-SUP-4)."""
    for code, head in HEADS.items():
        api = login(head)
        (task,) = _tasks(api, instance_id=instance_id)
        assert task["element_id"] == "comment_each"
        assert task["candidates"]["users"] == [head]
        assert task["due_at"] is not None  # heads comment within seven days
        detail = _task_data(api, task["id"])
        assert detail["data"]["department"] == code
        assert "平台使用率" in detail["instructions"] and "文件处理及时率" in detail["instructions"]
        _complete(api, task["id"], {"comment": f"{code} 本季度情况说明,下季度加强培训"})


def _score_all(login, instance_id, scores: dict[str, float]):
    supervisor = login("supervisor")
    state = supervisor.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert "score_department" in state["active_elements"], [i["message"] for i in state["incidents"]]
    tasks = _tasks(supervisor, instance_id=instance_id)
    assert sorted(_task_data(supervisor, t["id"])["data"]["scored_department"] for t in tasks) == ASSESSED
    assert all(t["candidates"]["groups"] == ["supervisor"] for t in tasks)
    result = None
    for task in tasks:
        detail = _task_data(supervisor, task["id"])
        code = detail["data"]["scored_department"]
        if code in HEADS:
            assert f"{code} 本季度情况说明" in detail["instructions"]  # the head's comment is shown
        assert detail["data"]["reference_score"] is not None
        result = _complete(supervisor, task["id"], {"score": scores[code], "remarks": f"{code} 评分说明"})
    return result


def _published(app, instance_id) -> dict:
    s = _db(app)
    try:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "assessment_published")).all()
        mine = [e for e in events if e.detail.get("instance") == instance_id]
        assert len(mine) == 1
        return mine[0].detail
    finally:
        s.close()


def _deploy_stand_in_if_needed(login):
    admin = login("sysadmin")
    keys = {d["key"] for d in admin.get("/api/v1/process-definitions", query_string={"limit": 200}
                                        ).get_json()["items"]}
    if "issue_rectification" in keys:
        return False
    r = admin.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(STAND_IN), "stand_in.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    return True


def test_supervisor_spot_check_all_departments_pass_and_the_best_are_commended(app, frozen, login):
    """R-SUP-4 (scoring by the supervision group, spot check started by hand) and R-SUP-5
    (commendation): nobody is below the bar, so no rectification is requested."""
    _some_activity(login)
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    instance_id = _start_by_hand(login)
    _comment_all(login, instance_id)
    result = _score_all(login, instance_id, {"FIN": 80, "HQ": 75, "OFFICE": 95, "PLATFORM": 90})
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]
    assert "end_published" in result["completed_elements"]
    assert "request_rectifications" not in result["completed_elements"]

    published = _published(app, instance_id)
    assert published["period"] == "2026-Q4"
    grades = {code: (r["grade"], r["outcome"], r["rectification_deadline"]) for code, r in published["results"].items()}
    assert grades == {"FIN": ("合格", "pass", None), "HQ": ("合格", "pass", None),
                      "OFFICE": ("优秀", "commend", None), "PLATFORM": ("优秀", "commend", None)}
    assert published["results"]["OFFICE"]["head_comment"] == "OFFICE 本季度情况说明,下季度加强培训"
    assert published["results"]["OFFICE"]["remarks"] == "OFFICE 评分说明"

    # Each department head is told the result; HQ has no head.
    office = login("office_head").get("/api/v1/notifications").get_json()["items"]
    assert any(n["kind"] == "assessment" and "优秀" in n["message"] and "2026年第4季度" in n["message"] for n in office)
    fin = login("fin_head").get("/api/v1/notifications").get_json()["items"]
    assert any(n["kind"] == "assessment" and "合格" in n["message"] for n in fin)
    supervisor = login("supervisor")
    assert supervisor.get("/api/v1/process-instances", query_string={"process_key": "issue_rectification"}
                          ).get_json()["total"] == 0

    # The indicators were computed from the quarter's records: the office started one application
    # and its head approved it (R-SUP-3); the per-person figures are in the audit record.
    s = _db(app)
    try:
        computed = s.scalars(select(AuditEvent).where(AuditEvent.action == "indicators_computed")).one().detail
    finally:
        s.close()
    office_figures = computed["departments"]["OFFICE"]
    assert office_figures["approval_decisions"] == 1
    # … but the application still waits for the platform's review: no outcome yet (docs/indicators.md §4)
    assert office_figures["submissions"] == 0 and office_figures["approval_pass_rate"] is None
    assert office_figures["used_users"] == 2 and office_figures["active_users"] == 3
    assert office_figures["people"]["clerk"]["used"] is False
    assert office_figures["people"]["office_admin"]["instances_started"] == 1


def test_departments_below_the_bar_get_a_rectification_instance_each(app, frozen, login):
    """R-SUP-5: 基本合格 and 不合格 carry a rectification deadline (不合格 also a criticism), and
    each starts an issue_rectification instance by the message rectification_required."""
    stand_in = _deploy_stand_in_if_needed(login)
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)  # 2027-01-05 09:00 Beijing time
    instance_id = _start_by_hand(login)
    _comment_all(login, instance_id)
    result = _score_all(login, instance_id, {"FIN": 59.5, "HQ": 88, "OFFICE": 74, "PLATFORM": 75})
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]
    assert "request_rectifications" in result["completed_elements"]
    assert "end_rectification_requested" in result["completed_elements"]

    published = _published(app, instance_id)
    results = published["results"]
    assert (results["OFFICE"]["grade"], results["OFFICE"]["outcome"]) == ("基本合格", "rectify")
    assert results["OFFICE"]["rectification_deadline"] == "2027-02-04T23:59:59+08:00"  # 30 days
    assert (results["FIN"]["grade"], results["FIN"]["outcome"]) == ("不合格", "criticise")
    assert results["FIN"]["rectification_deadline"] == "2027-01-20T23:59:59+08:00"  # 15 days
    assert results["PLATFORM"]["grade"] == "合格" and results["PLATFORM"]["rectification_deadline"] is None

    supervisor = login("supervisor")
    started = supervisor.get("/api/v1/process-instances", query_string={"process_key": "issue_rectification"}
                             ).get_json()["items"]
    assert len(started) == 2
    assert all(i["state"] == "running" and not i["incidents"] for i in started), started
    s = _db(app)
    try:
        sent = s.scalars(select(AuditEvent).where(AuditEvent.action == "message_sent",
                                                  AuditEvent.object_id == str(instance_id))).all()
        assert sorted(e.detail["to"] for e in sent) == sorted(i["id"] for i in started)
        assert all(e.detail["message"] == "rectification_required" for e in sent)
        payloads = [t.data for t in s.scalars(select(OpenTask).where(
            OpenTask.instance_id.in_([i["id"] for i in started])))]
    finally:
        s.close()
    # The payload reached the new instances: department, problem, severity and deadline.
    seen = json.dumps(payloads, ensure_ascii=False)
    for code, severity, deadline in (("OFFICE", "low", "2027-02-04T23:59:59+08:00"),
                                     ("FIN", "high", "2027-01-20T23:59:59+08:00")):
        assert deadline in seen and code in seen
        if stand_in:
            request = next(p["request"] for p in payloads if p["request"]["department"] == code)
            assert request["severity"] == severity and request["deadline"] == deadline
            assert "2026年第4季度" in request["problem"] and "请于" in request["problem"]

    # Each 限期整改 record is linked to its rectification instance, shown open (R-SUP-5).
    records = supervisor.get("/api/v1/performance-records").get_json()["items"]
    rectifications = [r for r in records if r["kind"] == "rectification"]
    assert sorted(r["rectification_instance_id"] for r in rectifications) == sorted(i["id"] for i in started)
    assert all(r["state"] == "open" and r["state_name"] == "整改中" for r in rectifications), rectifications
    assert all(r["state"] is None for r in records if r["kind"] != "rectification")
    page = supervisor.get("/performance").get_data(as_text=True)
    assert all(f"#{i['id']}</a>" in page for i in started) and "整改中" in page

    # Heads below the bar are told their deadline.
    fin = login("fin_head").get("/api/v1/notifications").get_json()["items"]
    assert any(n["kind"] == "assessment" and "不合格" in n["message"] for n in fin)


def test_only_the_supervision_group_starts_an_assessment_by_hand(app, frozen, login):
    """R-SUP-4: scoring is the supervision group's; anybody else's start is refused before an
    instance exists (issue 17: no request "finished" at 无权发起 in the clerk's list)."""
    clerk = login("clerk")
    r = clerk.post("/api/v1/process-instances", json={"process_key": KEY})
    assert r.status_code == 403
    assert clerk.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()["total"] == 0
    assert login("office_head").get("/api/v1/tasks", query_string={"process_key": KEY}).get_json()["total"] == 0


def test_a_head_cannot_comment_for_another_department(app, frozen, login):
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    instance_id = _start_by_hand(login)
    office_task = _tasks(login("office_head"), instance_id=instance_id)[0]
    r = login("fin_head").post(f"/api/v1/tasks/{office_task['id']}/complete", json={"data": {"comment": "越权填写"}})
    assert r.status_code == 403
    # The comment is required (the form says so, in Chinese).
    r = login("office_head").post(f"/api/v1/tasks/{office_task['id']}/complete", json={"data": {}})
    assert r.status_code == 422
    assert r.get_json()["details"][0]["field"] == "comment"


def test_a_score_outside_0_to_100_is_refused(app, frozen, login):
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    instance_id = _start_by_hand(login)
    _comment_all(login, instance_id)
    task = _tasks(login("supervisor"), instance_id=instance_id)[0]
    r = login("supervisor").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"score": 101}})
    assert r.status_code == 422
    assert r.get_json()["details"][0]["field"] == "score"


def test_a_quarter_without_active_users_publishes_an_empty_result(app, frozen, login):
    """Nobody held an account in 2026-Q2 (the organisation was created in Q4): no department is
    assessed, nobody is asked to comment or score, and the empty result is still recorded."""
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    supervisor = login("supervisor")
    instance_id = supervisor.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()["id"]
    (task,) = _tasks(supervisor, instance_id=instance_id)
    result = _complete(supervisor, task["id"], {"period": "2026-Q2"})
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]
    assert "end_published" in result["completed_elements"]
    published = _published(app, instance_id)
    assert published["period"] == "2026-Q2" and published["results"] == {}
    for head in HEADS.values():
        assert _tasks(login(head)) == []


def test_the_current_quarter_can_be_spot_checked_up_to_now(app, frozen, login):
    """R-SUP-4 不定期抽查: choosing the quarter in progress counts its records up to now."""
    frozen.current = datetime(2027, 2, 10, 2, 0, tzinfo=UTC)
    supervisor = login("supervisor")
    instance_id = supervisor.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()["id"]
    (task,) = _tasks(supervisor, instance_id=instance_id)
    _complete(supervisor, task["id"], {"period": "2027-Q1"})
    s = _db(app)
    try:
        computed = s.scalars(select(AuditEvent).where(AuditEvent.action == "indicators_computed")).one().detail
    finally:
        s.close()
    assert computed["period"] == "2027-Q1"
    assert computed["start"] == "2027-01-01T00:00:00+08:00"
    assert computed["end"].startswith("2027-02-10T02:00:00")  # up to now
    office = _tasks(login("office_head"), instance_id=instance_id)[0]
    assert "截至" in _task_data(login("office_head"), office["id"])["instructions"]


def test_the_quarterly_timer_starts_one_assessment_per_quarter(app, frozen, login):
    """R-SUP-4: the timer start event (R/2026-01-01T00:00:00+08:00/P3M) fires once at the start of
    each quarter, Beijing time, and assesses the quarter that just ended."""
    s = _db(app)
    try:
        definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == KEY)
                              .order_by(ProcessDefinition.version.desc()).limit(1))
        with app.test_request_context():
            # Schedule from the frozen clock, whatever time the app was deployed at.
            scheduler.schedule_start_timers(s, KEY, process_for(s, definition.deployment_id, KEY))
        s.commit()
    finally:
        s.close()
    supervisor = login("supervisor")

    def instances():
        items = supervisor.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()["items"]
        return sorted(items, key=lambda i: i["id"])

    run_due(app)
    assert instances() == []
    frozen.current = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 December, Beijing
    run_due(app)
    assert instances() == []
    frozen.current = datetime(2026, 12, 31, 16, 0, 30, tzinfo=UTC)  # 2027-01-01 00:00:30 Beijing
    run_due(app)
    first = instances()
    assert len(first) == 1 and first[0]["started_by"] is None
    assert first[0]["active_elements"] == ["comment_each"]
    run_due(app)
    assert len(instances()) == 1  # once per quarter, however often the scheduler runs

    frozen.current = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)
    run_due(app)  # the heads' comment deadlines fire here, but no new assessment
    assert len(instances()) == 1
    frozen.current = datetime(2027, 3, 31, 16, 5, tzinfo=UTC)  # 2027-04-01 00:05 Beijing
    run_due(app)
    run_due(app)
    second = instances()
    assert len(second) == 2

    s = _db(app)
    try:
        computed = s.scalars(select(AuditEvent).where(AuditEvent.action == "indicators_computed")
                             .order_by(AuditEvent.id)).all()
        assert [e.detail["period"] for e in computed] == ["2026-Q4", "2027-Q1"]
        rows = s.scalars(select(ProcessInstance).where(ProcessInstance.process_key == KEY)).all()
        assert all(r.state == "running" and not r.incidents for r in rows)
    finally:
        s.close()
    # Every head has one comment task per assessment.
    assert len(_tasks(login("office_head"))) == 2
    # Overdue comments were flagged (the first quarter's comments were due within seven days).
    assert {t["overdue"] for t in _tasks(login("fin_head"), instance_id=first[0]["id"])} == {True}
