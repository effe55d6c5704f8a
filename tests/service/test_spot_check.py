"""Spot checks (R-SUP-1, 不定期抽查) through the HTTP API and the pages: a supervisor chooses a
department, what to check and how many; the platform draws a random sample of what the supervisor
may inspect (seed kept, so the sample can be drawn again); the supervisor records 合格 / 不合格 with
a finding for each; the spot check is recorded in the audit log, and findings start an
issue_rectification for the department."""
from __future__ import annotations

from sqlalchemy import select

from service.models import AuditEvent, Department, ProcessInstance, User
from tests.service.flows import complete, only_task
from tests.service.test_pages import Browser, text

SCOPE = {"department": "OFFICE", "kinds": ["account"], "sample_size": 2, "purpose": "抽查账号管理规定执行情况"}
FINDING = "部门管理员权限未按岗位职责复核"


def _events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
        finally:
            s.close()


def _start(api) -> int:
    r = api.post("/api/v1/process-instances", json={"process_key": "spot_check"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["active_elements"] == ["choose_scope"]
    return r.get_json()["id"]


def _sampled(api, instance_id: int, scope: dict = SCOPE) -> tuple[dict, dict]:
    """Choose the scope; the check task and its data (the sample)."""
    task = only_task(api, instance_id=instance_id)
    assert task["element_id"] == "choose_scope"
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["department"]["format"] == "department"
    assert form["properties"]["sample_size"]["maximum"] == 20
    done = complete(api, task, scope)
    assert done["active_elements"] == ["check_items"], done
    check = only_task(api, instance_id=instance_id)
    return check, api.get(f"/api/v1/tasks/{check['id']}").get_json()["data"]


def test_a_finding_in_a_spot_check_of_office_accounts_starts_a_rectification(app, login, frozen):
    """R-SUP-1: a supervisor samples 2 of OFFICE's accounts (only OFFICE's, drawn with a seed kept in
    the data, and drawn again the same from it); one marked 不合格 with a finding starts an
    issue_rectification for OFFICE carrying the finding; the audit log has spot_check_recorded."""
    supervisor = login("supervisor")
    instance_id = _start(supervisor)
    check, data = _sampled(supervisor, instance_id)
    sample = data["sample"]
    assert sample["status"] == "ok" and sample["department"] == "OFFICE" and sample["pool"] == 3
    assert isinstance(sample["seed"], int)
    items = sample["items"]
    assert len(items) == 2 and {i["kind"] for i in items} == {"account"}
    assert {i["facts"]["department"] for i in items} == {"OFFICE"}
    assert {i["facts"]["username"] for i in items} <= {"office_head", "office_admin", "clerk"}
    assert [c["ref"] for c in data["checks"]] == [i["ref"] for i in items]
    assert f"随机种子 {sample['seed']}" in supervisor.get(f"/api/v1/tasks/{check['id']}").get_json()["instructions"]

    # Reproducible: the same seed over the same records draws the same sample.
    from service.procedures import spot_check

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        try:
            user = s.scalar(select(User).where(User.username == "supervisor"))
            office = s.scalar(select(Department).where(Department.code == "OFFICE"))
            again, pool = spot_check.draw(s, user, office, ["account"], 2, sample["seed"])
            assert [i["ref"] for i in again] == [i["ref"] for i in items] and pool == 3
        finally:
            s.rollback()
            s.close()

    failing = items[1]
    checks = [dict(data["checks"][0], result="pass"), dict(data["checks"][1], result="fail", finding=FINDING)]
    done = complete(supervisor, check, {"checks": checks, "severity": "high"})
    assert done["state"] == "completed", done
    assert "end_rectification_requested" in done["completed_elements"]

    listed = supervisor.get("/api/v1/process-instances", query_string={"process_key": "issue_rectification"})
    (rectification,) = listed.get_json()["items"]
    assert rectification["state"] == "running" and rectification["active_elements"] == ["rectify"]
    department = login("office_admin")
    task = only_task(department, instance_id=rectification["id"])
    request = department.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]
    assert request["department"] == "OFFICE" and request["severity"] == "high" and request["category"] == "account"
    assert FINDING in request["problem"] and failing["label"] in request["problem"]
    assert request["deadline"] == "2026-12-15T23:59:59+08:00"  # 14 days on, end of day
    assert failing["ref"] in request["evidence"]

    (sampled,) = _events(app, "spot_check_sampled")
    assert sampled.object_id == str(instance_id) and sampled.detail["seed"] == sample["seed"]
    (recorded,) = _events(app, "spot_check_recorded")
    assert recorded.object_type == "process_instance" and recorded.object_id == str(instance_id)
    assert recorded.detail["department"] == "OFFICE" and recorded.detail["passed"] == 1
    assert recorded.detail["failed"] == [{"ref": failing["ref"], "finding": FINDING}]
    assert any(e.detail.get("view") == "accounts" and e.detail.get("department") == "OFFICE"
               for e in _events(app, "inspection_read"))


def test_the_conclusions_are_held_to_the_sample_the_platform_drew(app, login, frozen):
    """R-SUP-1: the sample is the platform's (its audit event), not the data a submission could
    change: another department named at the check changes nothing, a missing conclusion sends the
    step back, and all 合格 ends the spot check without a rectification."""
    supervisor = login("supervisor")
    instance_id = _start(supervisor)
    check, data = _sampled(supervisor, instance_id)
    back = complete(supervisor, check, {"checks": [dict(data["checks"][0], result="pass")], "department": "FIN"})
    assert back["state"] == "running" and back["active_elements"] == ["check_items"]
    check = only_task(supervisor, instance_id=instance_id)
    again = supervisor.get(f"/api/v1/tasks/{check['id']}").get_json()["data"]
    assert again["record"]["status"] == "incomplete"
    assert again["checks"][0]["result"] == "pass" and "result" not in again["checks"][1]
    done = complete(supervisor, check, {"checks": [dict(c, result="pass") for c in again["checks"]]})
    assert done["state"] == "completed" and "end_passed" in done["completed_elements"]
    (recorded,) = _events(app, "spot_check_recorded")
    assert recorded.detail["department"] == "OFFICE" and recorded.detail["failed"] == []
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            assert s.scalar(select(ProcessInstance.id).where(ProcessInstance.process_key == "issue_rectification")) is None
        finally:
            s.close()


def test_a_scope_that_cannot_be_sampled_goes_back(login, frozen):
    """R-SUP-1: a department without a department administrator to put findings right (HQ here)
    goes back to the scope, saying why."""
    supervisor = login("supervisor")
    instance_id = _start(supervisor)
    task = only_task(supervisor, instance_id=instance_id)
    back = complete(supervisor, task, dict(SCOPE, department="HQ"))
    assert back["active_elements"] == ["choose_scope"]
    task = only_task(supervisor, instance_id=instance_id)
    data = supervisor.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]
    assert data["sample"]["status"] == "invalid" and "部门管理员" in data["sample"]["problem"]


def test_documents_are_sampled_by_their_metadata(app, login, frozen):
    """R-SUP-1, R-DOC-4: a sampled 秘密 document shows its classification, never its title or content."""
    from tests.service.documents_helpers import set_clearance, uploaded

    set_clearance(login, "office_head", "秘密")
    secret = uploaded(login("office_head"), b"secret text", title="涉密工作安排", security_level="秘密")
    supervisor = login("supervisor")
    instance_id = _start(supervisor)
    _check, data = _sampled(supervisor, instance_id, dict(SCOPE, kinds=["document"], sample_size=5))
    (item,) = data["sample"]["items"]
    assert item["ref"] == f"document:{secret['id']}" and item["facts"]["security_level"] == "秘密"
    assert item["facts"]["title"] is None and "涉密工作安排" not in str(data)


def test_the_check_page_lists_the_sample_and_takes_the_conclusions(app, login, frozen):
    """R-SUP-1: on the page each sampled record is shown read-only with a 合格 / 不合格 choice; the
    conclusions posted from the page (without the read-only fields) are paired with the sample."""
    supervisor = login("supervisor")
    instance_id = _start(supervisor)
    check, data = _sampled(supervisor, instance_id)
    page = Browser(app)
    page.sign_in("supervisor")
    shown = text(page.get(f"/tasks/{check['id']}"))
    assert all(c["label"] in shown for c in data["checks"]) and "不合格" in shown
    r = page.post(f"/tasks/{check['id']}", {"checks.0.result": "pass", "checks.1.result": "fail",
                                            "checks.1.finding": FINDING, "severity": "medium"})
    assert r.status_code == 302, text(r)
    (recorded,) = _events(app, "spot_check_recorded")
    assert recorded.detail["failed"] == [{"ref": data["checks"][1]["ref"], "finding": FINDING}]


def test_a_clerk_may_not_start_a_spot_check(login):
    """R-SUP-1, R-ACC-3: only the supervision group and the system administrators start spot checks."""
    r = login("clerk").post("/api/v1/process-instances", json={"process_key": "spot_check"})
    assert r.status_code == 403, r.get_json()
    assert login("sysadmin").post("/api/v1/process-instances", json={"process_key": "spot_check"}).status_code == 201
