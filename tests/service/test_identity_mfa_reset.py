"""An administrator resets a second factor for someone who lost both their authenticator and their
recovery codes (R-SEC-6), with a reason and an audit record naming who did it (R-SEC-10)."""
from __future__ import annotations

import re

from sqlalchemy import select

from service.models import AuditEvent, Notification
from tests.conftest import PASSWORD
from tests.service.identity_helpers import code, enrol
from tests.service.test_identity_webauthn import _register
from tests.service.test_pages import Browser, text

REASON = "lost phone and recovery codes, identity checked in person"


def _ids(login) -> dict[str, int]:
    return {u["username"]: u["id"] for u in login("sysadmin").get("/api/v1/users").get_json()["items"]}


def _reset(api, user_id, body):
    return api.post(f"/api/v1/users/{user_id}/mfa-reset", json=body)


def _signs_in_by_password(app, username) -> Browser:
    b = Browser(app)
    assert b.sign_in(username).headers["Location"] == "/"  # no /signin/code step
    return b


def test_a_reset_user_signs_in_by_password_and_is_sent_to_enrolment(app, org, login, client, frozen):
    """R-SEC-6, R-SEC-10: the sysadmin resets a department admin (obliged by the policy): factor,
    codes and sessions gone, the old code refused, enrolment forced; audited with reason and actor."""
    ids = _ids(login)
    before, secret, _codes = enrol(app, "office_admin")
    frozen.advance(seconds=30)
    r = _reset(login("sysadmin"), ids["office_admin"], {"reason": REASON})
    assert r.status_code == 200 and r.get_json() == {"username": "office_admin", "sessions_ended": 1}
    app.config["INKLESS"].mfa_enforced = True  # (the admins above signed in by password alone)
    assert before.get("/").headers["Location"].startswith("/signin")  # their session ended
    b = _signs_in_by_password(app, "office_admin")
    assert b.get("/tasks").headers["Location"].startswith("/account/mfa")
    # The old authenticator is gone: enrolment starts afresh with a new secret and the old code is refused.
    page = b.get("/account/mfa")
    assert page.status_code == 200 and "您的角色要求启用第二认证因素" in text(page)
    assert re.search(r'id="totp-secret">([A-Z2-7]+)<', text(page)).group(1) != secret
    assert b.post("/account/mfa", {"code": code(secret)}).status_code == 422
    with app.app_context():
        s = app.extensions["inkless.db"]()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "mfa_reset")).one()
        assert event.object_type == "user" and event.object_id == str(ids["office_admin"])
        assert event.actor_id == ids["sysadmin"] and event.detail["reason"] == REASON
        assert event.detail["removed"] == {"totp": 1, "recovery_codes": 10, "security_keys": 0}
        notice = s.scalars(select(Notification).where(Notification.user_id == ids["office_admin"])).one()
        assert notice.kind == "mfa_reset" and "sysadmin" in notice.title and notice.body == REASON
        s.close()


def test_a_user_not_obliged_gets_straight_in_after_the_page_reset(app, org, login, frozen):
    """R-SEC-6: the department admin resets a clerk's security key on /account/users (CSRF form,
    reason field); without a factor and not obliged, the clerk signs in by password and gets in."""
    ids = _ids(login)
    _register(app, "clerk")  # a security key (and its recovery codes)
    admin = Browser(app)
    admin.sign_in("office_admin")
    listing = text(admin.get("/account/users"))
    assert f'action="/account/users/{ids["clerk"]}/mfa-reset"' in listing and "重置第二认证因素" in listing
    assert admin.post(f"/account/users/{ids['clerk']}/mfa-reset", {"reason": "x"}, csrf=False).status_code == 403
    r = admin.post(f"/account/users/{ids['clerk']}/mfa-reset", {"reason": "  "})
    assert r.status_code == 302 and "未重置第二认证因素" in text(admin.get("/account/users"))
    _password_then_code = Browser(app)
    _password_then_code.get("/signin")
    assert _password_then_code.post("/signin", {"username": "clerk", "password": PASSWORD}) \
        .headers["Location"].startswith("/signin/code")  # the failed attempt changed nothing
    r = admin.post(f"/account/users/{ids['clerk']}/mfa-reset", {"reason": REASON})
    assert r.status_code == 302 and "clerk 的第二认证因素已重置" in text(admin.get("/account/users"))
    app.config["INKLESS"].mfa_enforced = True
    clerk = _signs_in_by_password(app, "clerk")
    assert clerk.get("/tasks").status_code == 200
    assert "尚未设置第二认证因素" in text(clerk.get("/account"))
    with app.app_context():
        s = app.extensions["inkless.db"]()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "mfa_reset")).one()
        assert event.actor_id == ids["office_admin"]
        assert event.detail["removed"] == {"totp": 0, "recovery_codes": 10, "security_keys": 1}
        s.close()
    # The clerk is told, in their language, by whom.
    messages = [n["message"] for n in clerk.client.get("/api/v1/notifications").get_json()["items"]]
    assert messages and messages[0].startswith("您的第二认证因素已被") and "office_admin" in messages[0]


def test_who_may_reset_whom(app, org, login):
    """R-SEC-6, R-SEC-10: the password-reset rule — another department's admin, an ordinary user,
    oneself and a department admin against a system admin are all refused; the reason is required."""
    from service import org as org_module

    with app.app_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "sysadmin2", PASSWORD, "HQ", "system_admin")
        s.commit()
        s.close()
    ids = _ids(login)
    body = {"reason": REASON}
    assert _reset(login("fin_admin"), ids["clerk"], body).status_code == 403
    assert _reset(login("office_head"), ids["clerk"], body).status_code == 403
    assert _reset(login("office_admin"), ids["office_admin"], body).status_code == 403
    assert _reset(login("sysadmin"), ids["sysadmin"], body).status_code == 403
    assert _reset(login("office_admin"), ids["sysadmin"], body).status_code == 403
    assert _reset(login("office_admin"), 999999, body).status_code == 404
    for missing in ({}, {"reason": " \n "}, {"reason": "x" * 2001}):
        r = _reset(login("office_admin"), ids["clerk"], missing)
        assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "reason"
        assert "reason" in r.get_json()["message"]
    assert _reset(login("sysadmin2"), ids["sysadmin"], body).status_code == 200
    with app.app_context():
        s = app.extensions["inkless.db"]()
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "mfa_reset")).all()
        assert [(e.actor_id, e.detail["reason"]) for e in events] == [(ids["sysadmin2"], REASON)]
        s.close()
