"""A step whose performers resolve to nobody who can act does not stall unseen (R-WF-2, R-SEC-10):
it goes to the platform management department, who are told why, and the audit log keeps the
performer spec that found nobody."""
from __future__ import annotations

from sqlalchemy import select

from service.models import AuditEvent
from tests.service.diagrams import escalation_process
from tests.service.test_scheduler import _deploy


def test_a_department_without_a_head_sends_the_approval_to_the_platform(app, login):
    _deploy(login("sysadmin"), "esc.bpmn", escalation_process())
    supervisor = login("supervisor")  # HQ has no head
    instance = supervisor.post("/api/v1/process-instances", json={"process_key": "escalating_approval"}).get_json()
    platform = login("platform")
    tasks = platform.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"]
    assert [t["element_id"] for t in tasks] == ["approve"]
    notes = platform.get("/api/v1/notifications").get_json()["items"]
    assert any(n["kind"] == "unassigned" and n["task_id"] == tasks[0]["id"] for n in notes)
    assert supervisor.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["total"] == 0
    with app.app_context():
        s = app.extensions["inkless.db"]()
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "task_unassigned"))
        assert event.object_id == tasks[0]["id"] and event.detail["performers"] == "dept_head"
        s.close()
    r = platform.post(f"/api/v1/tasks/{tasks[0]['id']}/complete", json={"data": {"decision": "approve"}})
    assert r.status_code == 200, r.get_json()


def test_a_department_with_a_head_is_not_affected(app, login):
    _deploy(login("sysadmin"), "esc.bpmn", escalation_process())
    instance = login("clerk").post("/api/v1/process-instances", json={"process_key": "escalating_approval"}).get_json()
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["total"] == 0
    assert login("office_head").get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["total"] == 1
