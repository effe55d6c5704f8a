"""The periodic permission review through the HTTP API (R-SEC-7, R-ACC-3, R-SEC-10).

permission_review.bpmn: a quarterly timer (or the platform management department, by hand)
starts it → the platform lists every grant per department → each department administrator
confirms or revokes their department's grants (parallel multi-instance) while the platform
management department reviews the platform-level ones → revocations apply at once, audited; a
department that does not review within 14 days is escalated to the platform management department.
"""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from engine import clock
from service import scheduler
from service.models import AuditEvent, Notification, ProcessDefinition, User, UserGroup
from service.scheduler import run_due
from service.workflows import process_for
from tests.conftest import PASSWORD, ApiClient
from tests.service.flows import complete, only_task

KEY = "permission_review"


def _db(app):
    return app.extensions["inkless.db"]()


def _add_groups(app, grants: dict[str, str]) -> None:
    """Grants made earlier (as permission_change.bpmn would): clerk a designer, fin_head an inspector."""
    s = _db(app)
    try:
        for username, group in grants.items():
            user = s.scalar(select(User).where(User.username == username))
            s.add(UserGroup(user_id=user.id, group_code=group))
        s.commit()
    finally:
        s.close()


def _start(login, who="platform") -> dict:
    r = login(who).post("/api/v1/process-instances", json={"process_key": KEY})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _decide(api, task_id: str, revoke: set[tuple[str, str]]) -> list[dict]:
    """The listed grants with every decision filled in: revoke those named, confirm the rest."""
    grants = api.get(f"/api/v1/tasks/{task_id}").get_json()["data"]["grants"]
    return [dict(g, decision="revoke" if (g["username"], g["grant"]) in revoke else "confirm") for g in grants]


def _deploys(api) -> int:
    """POST /process-definitions needs the designer group (or platform/system admin): an empty upload
    is 422 for those who may deploy and 403 for everybody else."""
    r = api.client.post("/api/v1/process-definitions", data={}, content_type="multipart/form-data",
                        headers=api._headers())
    return r.status_code


def _events(app, action: str) -> list[AuditEvent]:
    s = _db(app)
    try:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
    finally:
        s.close()


def test_review_by_hand_revokes_what_each_reviewer_revokes(app, login, client):
    """R-SEC-7: each department administrator reviews their department's grants and revokes one;
    the platform management department reviews the platform-level grants and demotes an
    administrator, whose sessions end. Every revocation is audited and takes effect at once."""
    _add_groups(app, {"clerk": "designer", "fin_head": "inspector"})
    assert _deploys(login("clerk")) == 422
    instance = _start(login)
    assert {"review_department", "review_platform"} <= set(instance["active_elements"])

    # OFFICE: the administrator sees only their department's grant they could give themselves.
    office = login("office_admin")
    task = only_task(office, instance_id=instance["id"])
    assert task["element_id"] == "review_department" and task["candidates"]["users"] == ["office_admin"]
    assert task["due_at"] is not None
    detail = office.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert [(g["username"], g["grant"]) for g in detail["data"]["grants"]] == [("clerk", "group:designer")]
    assert "办公室" in detail["instructions"]
    # Another department's administrator cannot see or complete it.
    assert login("fin_admin").get(f"/api/v1/tasks/{task['id']}").status_code == 404
    complete(office, task, {"grants": _decide(office, task["id"], {("clerk", "group:designer")}),
                            "remarks": "已调离设计岗位"})
    assert _deploys(login("clerk")) == 403  # the revoked grant is gone at once

    fin = login("fin_admin")
    task = only_task(fin, instance_id=instance["id"])
    complete(fin, task, {"grants": _decide(fin, task["id"], {("fin_head", "group:inspector")})})
    fin_head = next(u for u in fin.get("/api/v1/users").get_json()["items"] if u["username"] == "fin_head")
    assert fin_head["groups"] == ["dept_head"]  # the office group is not a reviewed grant

    # The platform reviews roles, platform-level groups and the administrators' own grants.
    platform = login("platform")
    task = only_task(platform, instance_id=instance["id"])
    assert task["element_id"] == "review_platform" and task["candidates"]["groups"] == ["platform_admin"]
    listed = {(g["username"], g["grant"]) for g in platform.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["grants"]}
    assert listed == {("sysadmin", "role:system_admin"), ("sysadmin", "group:platform_admin"),
                      ("platform", "group:platform_admin"), ("office_admin", "role:dept_admin"),
                      ("office_admin", "group:designer"), ("fin_admin", "role:dept_admin"),
                      ("supervisor", "group:supervisor")}
    done = complete(platform, task, {"grants": _decide(platform, task["id"], {("fin_admin", "role:dept_admin")})})
    assert done["state"] == "completed", done

    # The demoted administrator's token ends; signed in again, the user list is closed to them.
    assert fin.get("/api/v1/users").status_code == 401
    r = client.post("/api/v1/auth/token", json={"username": "fin_admin", "password": PASSWORD})
    again = ApiClient(client, r.get_json()["access_token"])
    assert again.get("/api/v1/users").status_code == 403

    revoked = _events(app, "grant_revoked")
    assert [(e.detail["username"], e.detail["grant"]) for e in revoked] == [
        ("clerk", "group:designer"), ("fin_head", "group:inspector"), ("fin_admin", "role:dept_admin")]
    assert revoked[2].detail["sessions_ended"] >= 1
    s = _db(app)
    try:
        actors = {e.actor_id: s.get(User, e.actor_id).username for e in revoked}
    finally:
        s.close()
    assert [actors[e.actor_id] for e in revoked] == ["office_admin", "fin_admin", "platform"]  # R-SEC-10
    reviewed = _events(app, "grants_reviewed")
    assert sorted(e.detail["department"] for e in reviewed) == ["", "FIN", "OFFICE"]
    platform_review = next(e for e in reviewed if e.detail["department"] == "")
    assert platform_review.detail["self_confirmed"] == [{"username": "platform", "grant": "group:platform_admin"}]
    (summary,) = _events(app, "permission_review_completed")
    assert summary.detail["revoked"] == 3 and summary.detail["confirmed"] == 6


def test_only_the_platform_starts_a_review_by_hand(login):
    """R-SEC-7: anybody else's start is refused before an instance exists (issue 17: not a request
    "finished" at 无权发起 in their list), without listing any grant."""
    for who in ("clerk", "office_admin"):
        api = login(who)
        assert api.post("/api/v1/process-instances", json={"process_key": KEY}).status_code == 403
        assert api.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()["total"] == 0
    assert _start(login, "sysadmin")["state"] == "running"


def test_a_submitted_grant_that_was_not_listed_cannot_be_revoked(app, login):
    """R-SEC-7: a reviewer decides only about the grants listed to them."""
    _add_groups(app, {"clerk": "designer"})
    instance = _start(login)
    office = login("office_admin")
    task = only_task(office, instance_id=instance["id"])
    forged = [{"username": "fin_admin", "grant": "role:dept_admin", "decision": "revoke"}]
    result = complete(office, task, {"grants": forged})
    # The step stops with an incident for an administrator (retry with corrected data); nothing changed.
    assert "does not match" in result["incidents"][0]["message"], result
    assert login("fin_admin").get("/api/v1/users").status_code == 200
    assert _events(app, "grant_revoked") == []


def test_an_overdue_department_is_escalated_to_the_platform(app, login, frozen):
    """R-SEC-7: a department administrator who does not review within 14 days loses the task to
    the platform management department, which is notified and reviews in their place."""
    _add_groups(app, {"clerk": "designer", "fin_head": "inspector"})
    instance = _start(login)
    office = login("office_admin")
    task = only_task(office, instance_id=instance["id"])
    complete(office, task, {"grants": _decide(office, task["id"], set())})

    frozen.current = clock.now() + timedelta(days=13)
    run_due(app)
    assert only_task(login("fin_admin"), instance_id=instance["id"])["element_id"] == "review_department"
    frozen.current = clock.now() + timedelta(days=1, minutes=1)
    run_due(app)
    assert login("fin_admin").get("/api/v1/tasks", query_string={"instance_id": instance["id"]}
                                  ).get_json()["items"] == []
    platform = login("platform")
    tasks = platform.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"]
    escalated = next(t for t in tasks if t["element_id"] == "review_escalated")
    assert escalated["candidates"]["groups"] == ["platform_admin"]
    s = _db(app)
    try:
        notes = s.scalars(select(Notification).where(Notification.kind == "escalation")).all()
        told = {s.get(User, n.user_id).username for n in notes}
        assert told == {"platform", "sysadmin"} and all("财务处" in n.title for n in notes)
    finally:
        s.close()
    complete(platform, escalated, {"grants": _decide(platform, escalated["id"], {("fin_head", "group:inspector")})})
    (revoked,) = _events(app, "grant_revoked")
    assert revoked.detail["grant"] == "group:inspector" and revoked.detail["department"] == "FIN"


def test_the_quarterly_timer_starts_one_review_per_quarter(app, login, frozen):
    """R-SEC-7: the timer start event (R/2026-01-01T00:00:00+08:00/P3M) fires once at the start of
    each quarter, Beijing time."""
    s = _db(app)
    try:
        definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == KEY)
                              .order_by(ProcessDefinition.version.desc()).limit(1))
        with app.test_request_context():
            scheduler.schedule_start_timers(s, KEY, process_for(s, definition.deployment_id, KEY))
        s.commit()
    finally:
        s.close()
    platform = login("platform")

    def instances():
        r = platform.get("/api/v1/process-instances", query_string={"process_key": KEY})
        return sorted(r.get_json()["items"], key=lambda i: i["id"])

    frozen.current = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 December, Beijing
    run_due(app)
    assert instances() == []
    frozen.current = datetime(2026, 12, 31, 16, 0, 30, tzinfo=UTC)  # 2027-01-01 00:00:30 Beijing
    run_due(app)
    run_due(app)
    (first,) = instances()
    assert first["started_by"] is None and "review_platform" in first["active_elements"]
    assert "review_department" not in first["active_elements"]  # no department has a grant of its own
    frozen.current = datetime(2027, 3, 31, 16, 5, tzinfo=UTC)  # 2027-04-01 00:05 Beijing
    run_due(app)
    assert len(instances()) == 2


def test_a_department_admin_reviews_on_the_task_page(app, login):
    """R-SEC-7 in the workspace: the page lists each grant read-only with a confirm/revoke choice;
    the choices come back in the listed order and the revocation applies."""
    from tests.service.test_pages import Browser, text

    _add_groups(app, {"clerk": "designer", "office_head": "inspector"})
    instance = _start(login)
    task = only_task(login("office_admin"), instance_id=instance["id"])
    page = Browser(app)
    page.sign_in("office_admin")
    body = text(page.get(f"/tasks/{task['id']}"))
    assert "clerk" in body and "office_head" in body and "撤销" in body
    assert 'name="grants.0.username"' not in body  # shown, never taken back from the browser
    r = page.post(f"/tasks/{task['id']}", [("grants.0.decision", "confirm"), ("grants.1.decision", "revoke"),
                                           ("remarks", "检查岗已撤销")])
    assert r.status_code == 302, text(r)
    (revoked,) = _events(app, "grant_revoked")
    assert (revoked.detail["username"], revoked.detail["grant"]) == ("office_head", "group:inspector")


def test_who_reviews_which_grant_is_the_decision_tables(app, login):
    """R-WF-1, R-SEC-7: the reviewer of each grant comes from grant_reviewer.dmn, not from Python.
    The platform redeploys the review with a table that keeps every grant for itself: the next
    review has no department task, and the platform's list holds the department's grant too."""
    root = Path(__file__).resolve().parents[2] / "process_models"
    table = (root / "grant_reviewer.dmn").read_text(encoding="utf-8")
    changed = table.replace('<outputEntry id="rule_department_reviewer"><text>"department"</text>',
                            '<outputEntry id="rule_department_reviewer"><text>"platform"</text>')
    assert changed != table
    _add_groups(app, {"clerk": "designer"})
    before = _start(login)
    assert "review_department" in before["active_elements"]

    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": [
        (io.BytesIO((root / f"{KEY}.bpmn").read_bytes()), f"{KEY}.bpmn"),
        (io.BytesIO(changed.encode()), "grant_reviewer.dmn")]},
        content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()

    after = _start(login)
    assert "review_department" not in after["active_elements"]
    platform = login("platform")
    task = only_task(platform, instance_id=after["id"])
    listed = {(g["username"], g["grant"]) for g in platform.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["grants"]}
    assert ("clerk", "group:designer") in listed
