"""Time made real: deadlines, escalation, timer starts, fired by the scheduler with a moved clock
(R-WF-2 decide within the deadline, R-SUP-4 quarterly, R-SEC-9 deadlines)."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from service.scheduler import run_due
from tests.service.diagrams import escalation_process, timer_start_process


def _deploy(api, name, content):
    r = api.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(content), name)]},
                        content_type="multipart/form-data", headers=api._headers())
    assert r.status_code == 201, r.get_json()


def test_approval_left_alone_past_its_deadline_escalates_exactly_once(app, login, frozen):
    """R-WF-2: an approval not decided within 48 hours is flagged overdue and escalates to the supervisors, once."""
    _deploy(login("sysadmin"), "esc.bpmn", escalation_process())
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "escalating_approval"}).get_json()
    head = login("office_head")
    task = head.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    assert task["due_at"].startswith("2026-12-03T01:00")
    assert task["overdue"] is False

    frozen.advance(hours=47)
    run_due(app)
    assert head.get("/api/v1/tasks", query_string={"overdue": True}).get_json()["total"] == 0

    frozen.advance(hours=2)
    run_due(app)
    state = clerk.get(f"/api/v1/process-instances/{instance['id']}").get_json()
    assert state["active_elements"] == ["escalated_approve"]
    assert state["completed_elements"].count("timeout") == 1
    supervisor = login("supervisor")
    escalated = supervisor.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"]
    assert [t["element_id"] for t in escalated] == ["escalated_approve"]
    assert head.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["total"] == 0
    kinds = [n["kind"] for n in supervisor.get("/api/v1/notifications").get_json()["items"]]
    assert "task" in kinds

    # Much later, nothing fires again.
    # (Built-in procedures' own timers, e.g. the quarterly assessment, may fire meanwhile.)
    frozen.advance(days=30)
    run_due(app)
    history = clerk.get(f"/api/v1/process-instances/{instance['id']}").get_json()["history"]
    assert [h["element_id"] for h in history].count("timeout") == 1


def test_deadline_marks_task_overdue_and_notifies(app, login, frozen):
    """R-WF-2: an overdue approval is listed and flagged, and whoever may do it is told."""
    _deploy(login("sysadmin"), "esc.bpmn", escalation_process(after="P7D").replace(
        b'<spiffworkflow:property name="due" value="&quot;P7D&quot;" />',
        b'<spiffworkflow:property name="due" value="&quot;P2D&quot;" />'))
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "escalating_approval"}).get_json()
    head = login("office_head")
    frozen.advance(days=2, minutes=1)
    run_due(app)
    overdue = head.get("/api/v1/tasks", query_string={"overdue": True}).get_json()["items"]
    assert [t["instance_id"] for t in overdue] == [instance["id"]]
    assert overdue[0]["overdue"] is True
    notes = head.get("/api/v1/notifications", query_string={"unread": True}).get_json()
    assert notes["unread"] >= 2
    assert {"task", "overdue"} <= {n["kind"] for n in notes["items"]}
    first = notes["items"][0]
    assert head.post(f"/api/v1/notifications/{first['id']}/read").get_json()["read"] is True
    assert head.get("/api/v1/notifications").get_json()["unread"] == notes["unread"] - 1
    assert login("clerk").post(f"/api/v1/notifications/{first['id']}/read").status_code == 404


def test_quarterly_timer_starts_one_instance_per_quarter(app, login, frozen):
    """R-SUP-4: a timer start event every quarter starts exactly one instance per quarter."""
    _deploy(login("sysadmin"), "q.bpmn", timer_start_process("quarterly_check", "R/2027-01-01T00:00:00+08:00/P3M"))
    supervisor = login("supervisor")

    def count():
        return supervisor.get("/api/v1/process-instances", query_string={"process_key": "quarterly_check"}
                              ).get_json()["total"]

    # run_due's own count also includes built-in procedures' timers; count this process's instances.
    run_due(app)
    assert count() == 0
    frozen.current = datetime(2026, 12, 31, 16, 1, tzinfo=timezone.utc)  # 2027-01-01 00:01 +08:00
    run_due(app)
    assert count() == 1
    run_due(app)
    assert count() == 1
    frozen.current = datetime(2027, 3, 31, 15, 0, tzinfo=timezone.utc)
    run_due(app)
    assert count() == 1
    frozen.current = datetime(2027, 3, 31, 16, 5, tzinfo=timezone.utc)
    run_due(app)
    assert count() == 2
    frozen.current = datetime(2027, 7, 1, 0, 0, tzinfo=timezone.utc)
    run_due(app)
    assert count() == 3
    tasks = supervisor.get("/api/v1/tasks", query_string={"process_key": "quarterly_check"}).get_json()
    assert tasks["total"] == 3, [(t["instance_id"], t["element_id"], t["id"]) for t in tasks["items"]]
    instances = supervisor.get("/api/v1/process-instances", query_string={"process_key": "quarterly_check"}
                               ).get_json()["items"]
    assert all(i["active_elements"] == ["review"] and i["started_by"] is None for i in instances)


def test_the_scheduler_knows_job_kinds_only_through_its_registry():
    """Issue 16 (no import circles): service/scheduler.py imports nothing it fires — instances,
    documents, backups, digests, the audit chain and analytics register their job kinds in
    service/jobs.py — and every kind a built-in job uses has a handler."""
    import ast
    from pathlib import Path

    from service import scheduler

    tree = ast.parse((Path(scheduler.__file__)).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported |= {node.module} if node.module else {alias.name for alias in node.names}
    assert imported <= {"db", "errors", "localtime", "models", "startup"}, imported
    assert {"timer", "deadline", "start", "archive", "backup", "digest", "audit", "audit_review",
            "snapshots"} <= set(scheduler.HANDLERS)
    assert {kind for kind, _ref in scheduler.STANDING_JOBS} <= set(scheduler.HANDLERS)


def test_a_worker_sleeps_until_the_next_job_is_due(app, frozen):
    """R-WF-2: a worker looks again when the next job is due, never later than its interval, and
    at once when one is due now."""
    from engine import clock
    from service.models import ScheduledJob
    from service.scheduler import seconds_to_next

    s = app.extensions["inkless.db"]()
    s.add(ScheduledJob(kind="deadline", ref="soon", due_at=clock.now() + timedelta(seconds=30)))
    s.commit()
    try:
        assert seconds_to_next(app, 1.0) == 1.0
        assert 29.0 <= seconds_to_next(app, 60.0) <= 30.0
        frozen.advance(seconds=31)
        assert seconds_to_next(app, 1.0) == 0.0
    finally:
        s.close()
