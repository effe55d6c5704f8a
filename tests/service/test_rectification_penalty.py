"""R-SUP-5 (整改仍不合格的 … 处罚), through the HTTP API: a rectification that fails its re-check a
second time goes to the supervision group for a penalty decision (issue_rectification.bpmn: the
gateway after the re-check counts `failed_rechecks`); a decision to penalise writes a 处罚 (penalty)
performance record linked to the assessment and naming the rectification, whose 限期整改 record then
reads 已处罚 (escalated). Only the platform's own issue_rectification may write that record."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from service.models import PerformanceRecord
from tests.service.flows import complete, only_task
from tests.service.test_issue_rectification import RECORD, RECTIFIED
from tests.service.test_quarterly_assessment import (
    _comment_all,
    _deploy_stand_in_if_needed,
    _score_all,
    _start_by_hand,
)
from tests.service.test_service_authority import _deploy, _forbidden_incident, _refusal, _service_task, steps

PENALTY = {"penalty_decision": "penalise", "penalty": "通报批评,扣减本季度绩效 5 分",
           "decision_notes": "两次复查仍不合格,依 R-SUP-5 予以处罚"}


def _tasks(api, **params):
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _records(api, **params) -> list[dict]:
    r = api.get("/api/v1/performance-records", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _rectify(login, instance_id, who="fin_admin"):
    api = login(who)
    task = only_task(api, instance_id=instance_id)
    assert task["element_id"] == "rectify"
    return complete(api, task, RECTIFIED)


def _fail_recheck(login, instance_id, notes, new_deadline, who="supervisor"):
    api = login(who)
    task = only_task(api, instance_id=instance_id)
    assert task["element_id"] == "recheck"
    return complete(api, task, {"recheck_result": "return", "recheck_notes": notes, "new_deadline": new_deadline})


def _db(app):
    return app.extensions["inkless.db"]()


def test_a_rectification_failing_its_recheck_twice_is_penalised(app, frozen, login):
    """R-SUP-5: the assessment's 限期整改 → its issue_rectification instance → rectified, re-check fails,
    rectified, re-check fails again → the supervision group's penalty decision → penalise → a penalty
    record linked to the assessment and the rectification, which reads 已处罚."""
    _deploy_stand_in_if_needed(login)
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)  # 2027-01-05 09:00 Beijing time
    assessment_id = _start_by_hand(login)
    _comment_all(login, assessment_id)
    result = _score_all(login, assessment_id, {"FIN": 59.5, "HQ": 88, "OFFICE": 95, "PLATFORM": 75})
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]
    supervisor = login("supervisor")
    (record,) = [r for r in _records(supervisor, period="2026-Q4") if r["kind"] == "rectification"]
    assert record["department_code"] == "FIN" and record["state"] == "open"
    instance_id = record["rectification_instance_id"]

    _rectify(login, instance_id)
    result = _fail_recheck(login, instance_id, "仍有 1 人使用共用账号", "2027-01-27T18:00:00+08:00")
    assert result["active_elements"] == ["rectify"]  # the first failure goes back to the department
    _rectify(login, instance_id)
    recheck = only_task(supervisor, instance_id=instance_id)
    assert "再次未到位将提交监督小组作处罚决定" in supervisor.get(f"/api/v1/tasks/{recheck['id']}").get_json()["instructions"]
    result = _fail_recheck(login, instance_id, "共用账号重新启用,整改不到位", "2027-02-03T18:00:00+08:00")
    assert result["active_elements"] == ["decide_penalty"]

    # The supervision group decides; the department does not see the decision.
    assert _tasks(login("fin_admin"), instance_id=instance_id) == []
    task = only_task(supervisor, instance_id=instance_id)
    assert task["element_id"] == "decide_penalty" and task["candidates"]["groups"] == ["supervisor"]
    detail = supervisor.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert "复查 2 次仍未到位" in detail["instructions"] and "共用账号重新启用" in detail["instructions"]
    assert [o["const"] for o in detail["form"]["properties"]["penalty_decision"]["oneOf"]] == ["penalise", "last_chance"]
    body = complete(supervisor, task, {"penalty_decision": "penalise", "decision_notes": "予以处罚"}, status=422)
    assert [d["field"] for d in body["details"]] == ["penalty"]
    r = login("fin_admin").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": PENALTY})
    assert r.status_code == 403
    result = complete(supervisor, task, PENALTY)
    assert result["state"] == "completed" and not result["incidents"], result["incidents"]
    assert "end_penalised" in result["completed_elements"]

    records = _records(supervisor, period="2026-Q4")
    (penalty,) = [r for r in records if r["kind"] == "penalty"]
    assert (penalty["department_code"], penalty["kind_name"]) == ("FIN", "处罚")
    assert penalty["assessment_instance_id"] == assessment_id
    assert penalty["rectification_instance_id"] == instance_id
    assert "通报批评,扣减本季度绩效 5 分" in penalty["detail"] and "复查 2 次" in penalty["detail"]
    (rectification,) = [r for r in records if r["kind"] == "rectification"]
    assert (rectification["state"], rectification["state_name"]) == ("escalated", "已处罚")
    # The department reads its own penalty too.
    assert {r["kind"] for r in _records(login("fin_admin"))} == {"criticism", "rectification", "penalty"}


def test_a_last_chance_goes_back_to_the_department_and_the_next_failure_is_decided_again(app, frozen, login):
    """R-SUP-5: giving a last chance returns the problem to the department with the final deadline
    and nothing is recorded; failing once more comes back to the supervision group, and a penalty
    for a problem found in an inspection (no assessment) is recorded in the current quarter."""
    supervisor = login("supervisor")
    r = supervisor.post("/api/v1/process-instances", json={"process_key": "issue_rectification"})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    complete(supervisor, only_task(supervisor, instance_id=instance_id), RECORD)
    for notes, deadline in (("仍有 1 人使用共用账号", "2026-12-15T18:00:00+08:00"),
                            ("共用账号重新启用", "2026-12-22T18:00:00+08:00")):
        _rectify(login, instance_id)
        result = _fail_recheck(login, instance_id, notes, deadline)
    assert result["active_elements"] == ["decide_penalty"]
    task = only_task(supervisor, instance_id=instance_id)
    body = complete(supervisor, task, {"penalty_decision": "last_chance", "decision_notes": "限年底前整改"}, status=422)
    assert [d["field"] for d in body["details"]] == ["final_deadline"]
    result = complete(supervisor, task, {"penalty_decision": "last_chance", "decision_notes": "限年底前整改到位,否则处罚",
                                         "final_deadline": "2026-12-31T18:00:00+08:00"})
    assert result["active_elements"] == ["rectify"]
    department = login("fin_admin")
    again = only_task(department, instance_id=instance_id)
    assert again["due_at"].startswith("2026-12-31T10:00")
    assert "最后一次整改机会" in department.get(f"/api/v1/tasks/{again['id']}").get_json()["instructions"]
    assert [r for r in _records(supervisor) if r["kind"] == "penalty"] == []

    _rectify(login, instance_id)
    result = _fail_recheck(login, instance_id, "仍未到位", "2027-01-08T18:00:00+08:00")
    assert result["active_elements"] == ["decide_penalty"]
    task = only_task(supervisor, instance_id=instance_id)
    assert "复查 3 次仍未到位" in supervisor.get(f"/api/v1/tasks/{task['id']}").get_json()["instructions"]
    result = complete(supervisor, task, PENALTY)
    assert result["state"] == "completed" and not result["incidents"], result["incidents"]
    (penalty,) = [r for r in _records(supervisor) if r["kind"] == "penalty"]
    assert (penalty["department_code"], penalty["period"]) == ("FIN", "2026-Q4")
    assert penalty["assessment_instance_id"] is None and penalty["rectification_instance_id"] == instance_id
    assert "复查 3 次" in penalty["detail"]


def _penalty_diagram(key: str) -> str:
    decide = ('<bpmn:userTask id="decide_penalty" name="处罚决定"><bpmn:extensionElements>'
              '<spiffworkflow:instructionsForEndUser>请决定</spiffworkflow:instructionsForEndUser>'
              '<spiffworkflow:properties><spiffworkflow:property name="performers" value="supervisor" />'
              '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>\n')
    return steps(key, ("decide_penalty", decide),
                 ("act", _service_task("act", "record_penalty", {"penalty": "'通报批评'", "department": "'FIN'"})))


def test_only_the_built_in_rectification_records_penalties(app, login):
    """R-SUP-5, issue 13: a department's designer cannot deploy a diagram calling record_penalty (it
    writes official records and needs `publish assessment` in every department); a system
    administrator's diagram may be deployed but the service refuses it, even after a supervisor's
    decision to penalise — nothing is recorded."""
    _refusal(_deploy(login("office_admin"), "penalise.bpmn", _penalty_diagram("penalise")), "act", "record_penalty")
    assert _deploy(login("sysadmin"), "penalise.bpmn", _penalty_diagram("penalise")).status_code == 201
    supervisor = login("supervisor")
    r = supervisor.post("/api/v1/process-instances", json={"process_key": "penalise"})
    assert r.status_code == 201, r.get_json()
    result = complete(supervisor, only_task(supervisor, instance_id=r.get_json()["id"]), PENALTY)
    assert "issue_rectification" in _forbidden_incident(result, "act", "record_penalty")["message"]
    s = _db(app)
    try:
        assert s.scalar(select(func.count()).select_from(PerformanceRecord)) == 0
    finally:
        s.close()
