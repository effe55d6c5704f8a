"""Permission change and deactivation through the HTTP API (R-ACC-3, R-ACC-4, R-SEC-7, R-SEC-10).

The office's department administrator asks, the platform management department approves, the
platform applies. A deactivation first hands over what the account owns; the platform refuses to
deactivate while anything is left.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.service.flows import complete as _complete

CHANGE = {"target_username": "clerk", "change_type": "change", "new_role": "dept_admin",
          "groups": ["inspector"], "new_post": "档案管理科长", "reason": "岗位调整为科长,负责本部门检查"}
DEACTIVATE = {"target_username": "clerk", "change_type": "deactivate", "reason": "调离本单位"}


@pytest.fixture
def people(app, org):
    """Two more OFFICE people: a successor for hand-overs and a system administrator."""
    from service import org as org_module

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "clerk_b", PASSWORD, "OFFICE", full_name="李小白")
        org_module.create_user(s, "office_sys", PASSWORD, "OFFICE", role="system_admin")
        s.commit()
        s.close()


def _tasks(api, **params):
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _only_task(api, **params):
    items = _tasks(api, **params)
    assert len(items) == 1, items
    return items[0]


def _request(login, data, who="office_admin"):
    api = login(who)
    r = api.post("/api/v1/process-instances", json={"process_key": "permission_change", "business_key": "PC-1"})
    assert r.status_code == 201, r.get_json()
    instance = r.get_json()
    task = _only_task(api, instance_id=instance["id"])
    assert task["element_id"] == "request_change"
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["change_type"]["title"] == "变更类型"
    return instance["id"], _complete(api, task, data)


def _decide(login, instance_id, decision, opinion=""):
    api = login("platform")
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "platform_review" and task["approval"] is True
    return _complete(api, task, {"decision": decision, "opinion": opinion})


def _audit(app, action):
    from service.models import AuditEvent

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        try:
            return [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                                .order_by(AuditEvent.id))]
        finally:
            s.close()


def _user(login, username):
    users = login("sysadmin").get("/api/v1/users", query_string={"limit": 500}).get_json()["items"]
    return next(u for u in users if u["username"] == username)


def test_role_and_group_change_applies_after_platform_approval(login, app):
    """R-ACC-4, R-SEC-7, R-SEC-8: the change is applied only after the platform management department
    approves, and the audit log keeps what the grant was before and after."""
    instance_id, body = _request(login, CHANGE)
    assert body["active_elements"] == ["platform_review"]  # the task; its deadline timer is not a step
    # The platform sees who asks for what, in the review's instructions.
    task = _only_task(login("platform"), instance_id=instance_id)
    assert "clerk" in task["instructions"] and "dept_admin" in task["instructions"]
    assert _user(login, "clerk")["role"] == "user"

    result = _decide(login, instance_id, "approve", "同意调整")
    assert result["state"] == "completed"
    assert "apply_change_task" in result["completed_elements"] and "end_changed" in result["completed_elements"]
    clerk = _user(login, "clerk")
    assert clerk["role"] == "dept_admin" and clerk["groups"] == ["inspector"]
    decisions = [(h["element_id"], h["user"], h["decision"]) for h in result["history"] if h["decision"]]
    assert decisions == [("platform_review", "platform", "approve")]
    [change] = _audit(app, "permissions_changed")
    assert change["before"] == {"role": "user", "groups": [], "post": None}
    assert change["after"] == {"role": "dept_admin", "groups": ["inspector"], "post": "档案管理科长"}


def test_change_keeps_office_groups_and_revokes_unlisted_ones(login):
    """R-SEC-7: a change withdraws grants not listed again, but never touches dept_head / platform_admin."""
    instance_id, _ = _request(login, dict(CHANGE, target_username="office_head", new_role="user",
                                          groups=["designer"]))
    _decide(login, instance_id, "approve")
    head = _user(login, "office_head")
    assert head["groups"] == ["dept_head", "designer"]

    instance_id, _ = _request(login, dict(CHANGE, target_username="office_head", new_role="user", groups=[]))
    _decide(login, instance_id, "approve")
    assert _user(login, "office_head")["groups"] == ["dept_head"]


def test_platform_returns_request_requester_amends_and_resubmits(login):
    """R-ACC-4, R-WF-2: a return carries the reason; the department admin amends and the platform approves."""
    instance_id, _ = _request(login, CHANGE)
    _decide(login, instance_id, "return", "检查员权限需另附岗位说明")
    api = login("office_admin")
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "amend_request"
    assert api.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"] == "检查员权限需另附岗位说明"
    _complete(api, task, dict(CHANGE, groups=[], action="resubmit"))
    result = _decide(login, instance_id, "approve")
    assert result["state"] == "completed"
    clerk = _user(login, "clerk")
    assert clerk["role"] == "dept_admin" and clerk["groups"] == []


def test_returned_request_withdrawn(login):
    """R-ACC-4: after a return the department admin may withdraw; nothing changes."""
    instance_id, _ = _request(login, CHANGE)
    _decide(login, instance_id, "return", "请先与本人确认")
    api = login("office_admin")
    result = _complete(api, _only_task(api, instance_id=instance_id), dict(CHANGE, action="withdraw"))
    assert result["state"] == "completed" and "end_withdrawn" in result["completed_elements"]
    assert _user(login, "clerk")["role"] == "user"


def test_platform_rejects_request(login):
    """R-ACC-4: a rejected request ends without any change."""
    instance_id, _ = _request(login, CHANGE)
    result = _decide(login, instance_id, "reject", "不符合最小权限原则")
    assert result["state"] == "completed"
    assert "end_rejected" in result["completed_elements"] and "apply_change_task" not in result["completed_elements"]
    assert _user(login, "clerk")["role"] == "user" and _user(login, "clerk")["groups"] == []


@pytest.mark.parametrize("who, data, words", [
    ("fin_admin", CHANGE, "本部门"),                                          # another department's user
    ("clerk", dict(CHANGE, target_username="clerk_b"), "本部门"),             # not an administrator
    ("office_admin", dict(CHANGE, target_username="office_admin"), "自己"),   # no self-grant
    ("office_admin", dict(CHANGE, target_username="office_sys"), "系统管理员"),
])
def test_request_outside_the_requesters_grant_goes_back_with_the_reason(login, people, who, data, words):
    """R-ACC-3, R-SEC-7: a department admin acts only for other users of their own department, and never
    on a system administrator; the platform's check sends the request back with the reason."""
    instance_id, body = _request(login, data, who=who)
    assert body["active_elements"] == ["amend_request"]
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0
    api = login(who)
    task = _only_task(api, instance_id=instance_id)
    assert words in api.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"]
    result = _complete(api, task, dict(data, action="withdraw"))
    assert "end_withdrawn" in result["completed_elements"]


def test_a_person_who_does_not_exist_is_refused_by_the_form(login, people):
    """R-ACC-3, issue 17: the person field (`format: user`) names an active person; the form says so."""
    api = login("office_admin")
    instance = api.post("/api/v1/process-instances", json={"process_key": "permission_change"}).get_json()
    body = _complete(api, _only_task(api, instance_id=instance["id"]), dict(CHANGE, target_username="nobody"),
                     status=422)
    assert [(d["field"], "不存在" in d["message"]) for d in body["details"]] == [("target_username", True)]


def test_corrected_request_passes_the_check(login, people):
    """R-ACC-3: after a refused check the requester corrects the user name and resubmits."""
    instance_id, _ = _request(login, dict(CHANGE, target_username="office_sys"))
    api = login("office_admin")
    _complete(api, _only_task(api, instance_id=instance_id), dict(CHANGE, action="resubmit"))
    assert _only_task(login("platform"), instance_id=instance_id)["element_id"] == "platform_review"


@pytest.mark.parametrize("field, value", [("new_role", "system_admin"), ("groups", ["platform_admin"]),
                                          ("groups", ["dept_head"])])
def test_system_admin_and_office_groups_cannot_be_requested(login, field, value):
    """R-ACC-3, R-SEC-7: nobody obtains system administration (or platform / head offices) through a request."""
    api = login("office_admin")
    instance = api.post("/api/v1/process-instances", json={"process_key": "permission_change"}).get_json()
    task = _only_task(api, instance_id=instance["id"])
    body = _complete(api, task, dict(CHANGE, **{field: value}), status=422)
    assert any(d["field"].startswith(field) for d in body["details"])


def test_change_refused_at_apply_time_when_the_user_left_the_department(login, app):
    """R-ACC-3: the grant is checked again when applied; a user who moved away meanwhile is not changed
    by their old department (the step fails with an incident naming the reason)."""
    instance_id, _ = _request(login, CHANGE)
    from service.models import Department, User

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        clerk = s.scalar(select(User).where(User.username == "clerk"))
        clerk.department_id = s.scalar(select(Department.id).where(Department.code == "FIN"))
        s.commit()
        s.close()
    result = _decide(login, instance_id, "approve")
    assert result["state"] == "error"
    incident = result["incidents"][0]
    assert incident["element"] == "apply_change_task" and "本部门" in incident["message"]
    assert _user(login, "clerk")["role"] == "user"


def _approve_deactivation(login, target="clerk"):
    instance_id, _ = _request(login, dict(DEACTIVATE, target_username=target))
    return instance_id, _decide(login, instance_id, "approve", "同意注销")


def test_deactivation_without_anything_to_hand_over_ends_sessions_at_once(login, client, people):
    """R-ACC-4: an account that owns nothing is deactivated right after approval; its token stops working."""
    old = login("clerk_b")
    assert old.get("/api/v1/tasks").status_code == 200
    _, result = _approve_deactivation(login, "clerk_b")
    assert result["state"] == "completed"
    assert [e for e in result["completed_elements"] if e.endswith("_task")] == [
        "check_request_task", "handover_inventory_task", "deactivate_task"]
    assert "end_deactivated" in result["completed_elements"]
    assert old.get("/api/v1/tasks").status_code == 401
    r = client.post("/api/v1/auth/token", json={"username": "clerk_b", "password": PASSWORD})
    assert r.status_code == 401
    assert _user(login, "clerk_b")["active"] is False


def test_deactivation_refused_while_hand_over_incomplete(login, client, app, people):
    """R-ACC-4: open tasks and running processes are listed and handed over; while anything is left the
    platform refuses to deactivate and the diagram goes back to the hand-over. Afterwards the user can no
    longer sign in and an existing token gets 401."""
    clerk = login("clerk")
    feedback = clerk.post("/api/v1/process-instances", json={"process_key": "feedback"}).get_json()
    assert _only_task(clerk, instance_id=feedback["id"])["element_id"] == "submit_feedback"

    instance_id, result = _approve_deactivation(login)
    assert result["state"] == "running" and result["active_elements"] == ["handover_task"]
    admin = login("office_admin")
    handover = _only_task(admin, instance_id=instance_id)
    detail = admin.get(f"/api/v1/tasks/{handover['id']}").get_json()
    inventory = detail["data"]["inventory"]
    assert inventory["total"] == 2 and inventory["documents"] == []
    assert [i["id"] for i in inventory["instances"]] == [feedback["id"]]
    assert f"#{feedback['id']}" in detail["data"]["handover_items"]

    # Meanwhile the user, still active, starts another process: it was not in the list just reviewed.
    fault = clerk.post("/api/v1/process-instances", json={"process_key": "fault_report"}).get_json()
    result = _complete(admin, handover, {"successor_username": "clerk_b", "handover_note": "按清单交接"})
    assert result["state"] == "running" and result["active_elements"] == ["handover_task"]
    assert result["completed_elements"].count("deactivate_task") == 1
    again = _only_task(admin, instance_id=instance_id)
    assert "拒绝注销" in again["instructions"]
    data = admin.get(f"/api/v1/tasks/{again['id']}").get_json()["data"]
    assert data["deactivation"] == {"deactivated": False,
                                    "remaining": {"open_tasks": 1, "instances": 1, "documents": 0},
                                    "reason": data["deactivation"]["reason"]}
    assert [i["id"] for i in data["inventory"]["instances"]] == [fault["id"]]
    assert clerk.get("/api/v1/tasks").status_code == 200  # not deactivated yet
    successor = login("clerk_b")
    assert {t["instance_id"] for t in _tasks(successor)} == {feedback["id"]}
    told = successor.get("/api/v1/notifications").get_json()["items"]
    assert [n["instance_id"] for n in told if n["kind"] == "task"] == [feedback["id"]]

    result = _complete(admin, again, {"successor_username": "clerk_b"})
    assert result["state"] == "completed" and "end_deactivated" in result["completed_elements"]
    assert clerk.get("/api/v1/tasks").status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD}).status_code == 401
    # The successor now owns both processes and their open steps.
    assert {t["instance_id"] for t in _tasks(successor)} == {feedback["id"], fault["id"]}
    mine = successor.get("/api/v1/process-instances", query_string={"started_by": "clerk_b"}).get_json()["items"]
    assert {i["id"] for i in mine} == {feedback["id"], fault["id"]}
    task = _only_task(successor, instance_id=feedback["id"])
    _complete(successor, task, {"category": "suggestion", "subject": "交接后继续办理", "content": "由接替人员提交"})
    # R-SEC-8: both hand-over rounds and the deactivation are in the audit log.
    rounds = _audit(app, "account_handed_over")
    assert [(r["successor"], r["instances"]) for r in rounds] == [("clerk_b", [feedback["id"]]),
                                                                   ("clerk_b", [fault["id"]])]
    [deactivated] = _audit(app, "account_deactivated")
    assert deactivated["username"] == "clerk" and deactivated["tokens_revoked"] >= 1


def test_documents_owned_by_the_account_are_handed_over_before_deactivation(login, people):
    """R-ACC-4, R-DOC-4: the account's documents are in the hand-over list, go to the successor, and an
    archived document needs no successor."""
    from tests.service.documents_helpers import uploaded

    clerk = login("clerk")
    live = uploaded(clerk, title="办公室值班表")
    instance_id, result = _approve_deactivation(login)
    assert result["active_elements"] == ["handover_task"]
    admin = login("office_admin")
    handover = _only_task(admin, instance_id=instance_id)
    inventory = admin.get(f"/api/v1/tasks/{handover['id']}").get_json()["data"]["inventory"]
    assert inventory["documents"] == [{"id": live["id"], "title": "办公室值班表"}]
    result = _complete(admin, handover, {"successor_username": "clerk_b"})
    assert result["state"] == "completed" and "end_deactivated" in result["completed_elements"]
    successor = login("clerk_b")
    document = successor.get(f"/api/v1/documents/{live['id']}").get_json()
    assert document["owner"] == "clerk_b"


def test_hand_over_to_someone_outside_the_department_is_refused(login, people):
    """R-ACC-3, R-ACC-4: items go only to an active user of the same department; otherwise nothing moves
    and the hand-over is asked for again with the reason."""
    clerk = login("clerk")
    started = clerk.post("/api/v1/process-instances", json={"process_key": "feedback"}).get_json()
    instance_id, _ = _approve_deactivation(login)
    admin = login("office_admin")
    result = _complete(admin, _only_task(admin, instance_id=instance_id), {"successor_username": "fin_head"})
    assert result["active_elements"] == ["handover_task"]
    task = _only_task(admin, instance_id=instance_id)
    assert "不是本部门用户" in task["instructions"]
    assert _tasks(login("fin_head"), instance_id=started["id"]) == []
    assert clerk.get("/api/v1/tasks").status_code == 200

    result = _complete(admin, task, {"successor_username": "clerk_b"})
    assert result["state"] == "completed" and "end_deactivated" in result["completed_elements"]
    assert clerk.get("/api/v1/tasks").status_code == 401


def test_only_the_platform_management_department_approves(login):
    """R-ACC-4, R-SEC-10: the requester's department head or admin cannot approve their own request."""
    instance_id, _ = _request(login, CHANGE)
    task = _only_task(login("platform"), instance_id=instance_id)
    for who in ("office_admin", "office_head", "clerk"):
        r = login(who).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
        assert r.status_code == 403
