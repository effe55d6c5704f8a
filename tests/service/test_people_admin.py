"""People and departments in the browser (issue 17, R-ACC-3, R-ACC-4): a department administrator
creates an account in their department within what they may grant, edits it, and deactivates
another only once its hand-over is complete; the system administrator creates departments and
names heads. The pages call service/people.py, as the API does."""
from __future__ import annotations

import re

from sqlalchemy import select

from tests.service import test_pages
from tests.service.test_pages import _fill_application, text

browser = test_pages.browser  # the signed-in people of the page tests


def _rows(app, model, *where):
    with app.app_context():
        from service import db

        return db.session().scalars(select(model).where(*where)).all()


def _user(app, username):
    from service.models import User

    return _rows(app, User, User.username == username)[0]


def test_a_department_admin_creates_an_account_within_their_grant(app, browser):
    """R-ACC-3, R-SEC-7: OFFICE's administrator creates an account in OFFICE only, with groups they may grant."""
    admin = browser("office_admin")
    page = text(admin.get("/account/users/new"))
    assert 'value="OFFICE"' in page and 'value="FIN"' not in page
    assert 'value="designer"' in page and 'value="supervisor"' not in page
    r = admin.post("/account/users/new", {"username": "x", "full_name": "", "department": "OFFICE"})
    assert r.status_code == 422 and "2 至 64 个字母" in text(r)
    r = admin.post("/account/users/new", {"username": "clerk", "full_name": "王五", "department": "OFFICE"})
    assert r.status_code == 422 and "该用户名已被占用" in text(r)
    assert admin.post("/account/users/new", {"username": "wangwu", "full_name": "王五", "department": "FIN"}
                      ).status_code == 403
    assert admin.post("/account/users/new", {"username": "wangwu", "full_name": "王五", "department": "OFFICE",
                                             "groups": "supervisor"}).status_code == 403
    r = admin.post("/account/users/new", {"username": "wangwu", "full_name": "王五", "department": "OFFICE",
                                          "post": "档案员", "role": "user", "groups": "designer"})
    assert r.status_code == 200
    temporary = re.search(r'id="temporary-password">([^<]+)<', text(r)).group(1)
    user = _user(app, "wangwu")
    assert user.must_change_password and user.groups == {"designer"} and user.post == "档案员"
    assert test_pages.Browser(app).sign_in("wangwu", temporary).headers["Location"].startswith("/password")
    # Listed, searched and filtered; another department's people are not.
    listing = text(admin.get("/account/users?q=王五"))
    assert "wangwu" in listing and "clerk" not in listing
    assert "fin_head" not in text(admin.get("/account/users"))
    assert "每分钟 10 次" in text(admin.get("/account/users")) and "per minute" not in text(admin.get("/account/users"))
    # Edited: the post, a group taken away.
    r = admin.post(f"/account/users/{user.id}", {"full_name": "王五", "post": "综合档案员", "role": "user"})
    assert r.status_code == 302
    user = _user(app, "wangwu")
    assert user.post == "综合档案员" and user.groups == set()


def test_deactivation_is_refused_while_the_hand_over_is_incomplete(app, browser, login):
    """R-ACC-4: clerk still has a running request, so the platform refuses and lists it; once it is
    withdrawn the account is deactivated, its sessions end, audited."""
    from service.models import AuditEvent

    clerk = browser("clerk")
    _fill_application(clerk)
    clerk_id = _user(app, "clerk").id
    admin = browser("office_admin")
    assert "注销账号" in text(admin.get(f"/account/users/{clerk_id}"))
    r = admin.post(f"/account/users/{clerk_id}/deactivate", {"reason": "离职"})
    assert r.status_code == 409
    assert "仍有 0 项待办任务、1 个进行中的流程、0 份文件未交接" in text(r) and "account_application #" in text(r)
    assert _user(app, "clerk").active
    r = login("office_admin").post(f"/api/v1/users/{clerk_id}/deactivate", json={"reason": "离职"})
    assert r.status_code == 409 and r.get_json()["details"][0]["kind"] == "instance"
    instance_id = login("clerk").get("/api/v1/process-instances").get_json()["items"][0]["id"]
    assert clerk.post(f"/requests/{instance_id}/withdraw", {"reason": "离职"}).status_code == 302
    r = admin.post(f"/account/users/{clerk_id}/deactivate", {"reason": "离职"})
    assert r.status_code == 302
    assert not _user(app, "clerk").active
    assert clerk.get("/tasks").status_code == 302  # signed out
    (event,) = _rows(app, AuditEvent, AuditEvent.action == "account_deactivated")
    assert event.detail["reason"] == "离职"


def test_the_system_admin_creates_a_department_and_names_its_head(app, browser):
    """R-ACC-3: departments are platform configuration; a head carries the dept_head group."""
    admin = browser("sysadmin")
    r = admin.post("/account/departments", {"code": "LAW", "name": "法规处", "parent": "HQ"})
    assert r.status_code == 302
    assert "法规处" in text(admin.get("/account/departments"))
    r = admin.post("/account/users/new", {"username": "lawyer", "full_name": "李律", "department": "LAW"})
    assert r.status_code == 200
    assert admin.post("/account/departments/LAW/head", {"head": "lawyer"}).status_code == 302
    assert "dept_head" in _user(app, "lawyer").groups
    office = browser("office_admin")
    assert office.post("/account/departments", {"code": "X1", "name": "某处"}).status_code == 403
    assert office.post("/account/departments/FIN/head", {"head": "fin_admin"}).status_code == 403
    # OFFICE's administrator moves OFFICE's head: the former head leaves the dept_head group.
    assert office.post("/account/departments/OFFICE/head", {"head": "clerk"}).status_code == 302
    assert "dept_head" in _user(app, "clerk").groups and "dept_head" not in _user(app, "office_head").groups


def test_the_api_creates_an_account_and_shows_its_temporary_password_once(login):
    """R-ACC-3, R-SEC-7: POST /api/v1/users answers the new account and its one-time password, with
    which the person signs in (and must change it)."""
    r = login("office_admin").post("/api/v1/users", json={
        "username": "zhaoliu", "full_name": "赵六", "department": "OFFICE", "role": "user", "groups": []})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert (created["username"], created["department"], created["groups"]) == ("zhaoliu", "OFFICE", [])
    assert created["must_change_password"] is True and len(created["temporary_password"]) >= 12
    signed_in = login("zhaoliu", created["temporary_password"])
    assert signed_in.get("/api/v1/auth/tokens").status_code == 200
    listed = login("office_admin").get("/api/v1/users").get_json()["items"]
    assert "temporary_password" not in next(u for u in listed if u["username"] == "zhaoliu")
