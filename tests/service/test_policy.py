"""Authorisation as one table (R-ACC-3, R-SEC-7) and break-glass access to documents above a
system administrator's clearance (R-SEC-4, R-SEC-10), through the HTTP API."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine import clock
from service.models import AuditEvent, Notification, User
from tests.service.documents_helpers import API, set_clearance, uploaded
from tests.service.flows import complete, only_task


def _db(app):
    return app.extensions["inkless.db"]()


def test_the_policy_table_is_readable_by_administrators_only(login):
    """R-ACC-3 / R-SEC-7: the table is published read-only; it says who manages whom."""
    for who in ("clerk", "supervisor"):
        assert login(who).get("/api/v1/policy").status_code == 403
    body = login("office_admin").get("/api/v1/policy").get_json()
    rules = {(r["holder"], r["action"], r["resource"]): r["scope"] for r in body["rules"]}
    assert rules[("role:dept_admin", "manage", "user")] == "department"
    assert rules[("role:system_admin", "manage", "user")] == "all"
    assert rules[("role:system_admin", "break_glass", "document")] == "all"
    assert ("role:system_admin", "read", "document") not in rules  # clearance, not role, opens documents
    grants = {g["holder"]: g for g in body["grants"]}
    assert "system_admin" not in grants["role:dept_admin"]["roles"]
    assert "supervisor" not in grants["role:dept_admin"]["groups"]
    assert body["scopes"] == ["own", "department", "all"]


def test_department_admins_list_only_their_department(login):
    """R-ACC-3: the same table filters the user list and decides single lookups."""
    names = {u["username"] for u in login("fin_admin").get("/api/v1/users").get_json()["items"]}
    assert names == {"fin_head", "fin_admin"}
    assert len(login("sysadmin").get("/api/v1/users").get_json()["items"]) == 8


def _core_secret(login) -> dict:
    set_clearance(login, "office_head", "核心机密")
    return uploaded(login("office_head"), b"core secret plan", security_level="核心机密")


def test_system_admin_reads_a_core_secret_document_only_by_break_glass(app, login, frozen):
    """R-SEC-4 / R-SEC-10: the role alone does not open it; break-glass does, for an hour, audited,
    and the head of the owner's department is told who and why."""
    document = _core_secret(login)
    admin = login("sysadmin")
    assert admin.get(f"{API}/{document['id']}").status_code == 404
    assert document["id"] not in [d["id"] for d in admin.get(API).get_json()["items"]]

    r = admin.post(f"{API}/{document['id']}/break-glass", json={"reason": "   "})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "reason"
    assert admin.post(f"{API}/{document['id']}/break-glass", json={}).status_code == 422
    # Nobody else may break the glass, not even the department's own administrator.
    for who in ("office_admin", "clerk", "platform"):
        assert login(who).post(f"{API}/{document['id']}/break-glass", json={"reason": "急"}).status_code == 403

    r = admin.post(f"{API}/{document['id']}/break-glass", json={"reason": "数据恢复:主管部门紧急调阅"})
    assert r.status_code == 201, r.get_json()
    grant = r.get_json()
    assert grant["reason"] == "数据恢复:主管部门紧急调阅"
    opened = admin.get(f"{API}/{document['id']}")
    assert opened.status_code == 200
    assert opened.get_json()["permissions"] == {"read": True, "edit": False, "manage": False}
    assert admin.get(f"{API}/{document['id']}/content").data == b"core secret plan"
    assert document["id"] in [d["id"] for d in admin.get(API).get_json()["items"]]
    # Read-only: no shares, no versions, no deletion.
    assert admin.client.delete(f"{API}/{document['id']}", headers=admin._headers()).status_code == 403

    head_notes = login("office_head").get("/api/v1/notifications").get_json()["items"]
    assert any(n["kind"] == "break_glass" and str(document["id"]) in n["message"] for n in head_notes)
    s = _db(app)
    try:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "break_glass"))
        sysadmin = s.scalar(select(User).where(User.username == "sysadmin"))
        head = s.scalar(select(User).where(User.username == "office_head"))
        assert event.actor_id == sysadmin.id and event.object_id == str(document["id"])
        assert event.detail["reason"] == "数据恢复:主管部门紧急调阅" and event.detail["notified"] == [head.id]
        note = s.scalar(select(Notification).where(Notification.kind == "break_glass"))
        assert "数据恢复" in note.body and "sysadmin" in note.body
    finally:
        s.close()

    # An hour later the glass is whole again.
    frozen.current = clock.now() + timedelta(hours=1, seconds=1)
    assert admin.get(f"{API}/{document['id']}").status_code == 404
    assert document["id"] not in [d["id"] for d in admin.get(API).get_json()["items"]]


def test_break_glass_is_refused_where_clearance_already_reads(login):
    """R-SEC-7: no emergency grant where the ordinary rules already give access; unknown is 404."""
    document = uploaded(login("clerk"))
    admin = login("sysadmin")
    assert admin.post(f"{API}/{document['id']}/break-glass", json={"reason": "测试"}).status_code == 409
    assert admin.post(f"{API}/999999/break-glass", json={"reason": "测试"}).status_code == 404


def test_a_department_admin_cannot_request_a_group_beyond_their_own_grant(login):
    """R-SEC-7: nobody grants more than they hold — the supervision group is not a department
    administrator's to give, so the request goes back to them with the reason."""
    from tests.service.test_permission_change import CHANGE, _only_task, _request

    instance_id, _ = _request(login, dict(CHANGE, groups=["supervisor"]))
    api = login("office_admin")
    detail = api.get(f"/api/v1/tasks/{_only_task(api, instance_id=instance_id)['id']}").get_json()
    assert detail["data"]["check"]["ok"] is False and "supervisor" in detail["data"]["return_reason"]
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["items"] == []


def test_the_documented_table_is_the_table():
    """R-SEC-7: docs/architecture.md shows exactly the rules service/policy.py enforces."""
    from pathlib import Path

    from service import policy

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            holder, scope, actions = (cell.strip() for cell in line.strip("|").split("|"))
            documented |= {(holder.strip("`"), *a.split(" "), scope) for a in actions.split(", ")}
    assert documented == {(r.holder, r.action, r.resource, r.scope) for r in policy.RULES}


def test_administrators_read_the_table_on_a_page(app, org):
    """R-ACC-3: the same table, rendered read-only; an ordinary user is refused."""
    from tests.service.test_pages import Browser, text

    admin = Browser(app)
    admin.sign_in("office_admin")
    page = admin.get("/policy")
    assert page.status_code == 200
    assert "break_glass" in text(page) and "本部门" in text(page) and "<form" not in text(page).split("<main")[1]
    # Issue 17: in words a supervisor reads; the identifiers only inside a detail.
    main = text(page).split("<main")[1]
    assert "<h2 id=\"holder-1\">所有已登录人员</h2>" in main and "部门管理员" in main and "平台管理部门" in main
    assert "<td>查看申请</td>" in main and "<td>紧急调阅文档</td>" in main
    assert "<td><code>" not in main and "role:dept_admin" in main.split("<details>", 1)[1]
    clerk = Browser(app)
    clerk.sign_in("clerk")
    assert clerk.get("/policy").status_code == 403


def test_the_loaded_task_check_agrees_with_the_sql_rule(app, login):
    """R-ACC-3: `complete on task` decided in Python on a loaded task (the hot path) admits exactly
    whom the SQL condition admits, for every user, claimed and unclaimed."""
    from sqlalchemy.orm import selectinload

    from service import policy
    from service.models import OpenTask
    from tests.service.test_account_application import APPLICATION

    office_admin = login("office_admin")
    started = office_admin.post("/api/v1/process-instances", json={"process_key": "account_application"})
    assert started.status_code == 201, started.get_json()
    task = only_task(office_admin, instance_id=started.get_json()["id"])
    complete(office_admin, task, APPLICATION)
    review = only_task(login("office_head"), instance_id=started.get_json()["id"])
    for claimed in (False, True):
        if claimed:
            assert login("office_head").post(f"/api/v1/tasks/{review['id']}/claim", json={}).status_code == 200
        with app.app_context():
            s = _db(app)
            users = s.scalars(select(User)).all()
            for row in s.scalars(select(OpenTask).options(selectinload(OpenTask.candidates))).all():
                for user in users:
                    fast = policy.allows(user, "complete", "task", row)
                    slow = policy._in_scope(user, "complete", "task", row)
                    assert fast == slow, (user.username, row.element_id, claimed)
            s.close()
