"""Login defences (R-SEC-1, R-SEC-2): lockout, per-address rate limit, password profiles, the
administrator's password reset."""
from __future__ import annotations

import re

import argon2
import argon2._password_hasher
from sqlalchemy import func, select, update

from service.models import AuditEvent, User
from tests.conftest import PASSWORD
from tests.service.test_pages import Browser, text


def _token(client, username, password=PASSWORD):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_five_failures_lock_the_account_until_the_window_passes(app, org, client, frozen):
    """R-SEC-2: 5 failures in 15 minutes lock the account; the answer is the wrong-password one;
    failures are `login_failed` audit events; the lock lifts by itself."""
    wrong = _token(client, "clerk", "not the password")
    for _ in range(4):
        frozen.advance(minutes=2)
        assert _token(client, "clerk", "not the password").status_code == 401
    locked = _token(client, "clerk")
    assert locked.status_code == 401 and locked.get_json()["message"] == wrong.get_json()["message"]
    unknown = _token(client, "nobody")
    assert unknown.get_json()["message"] == wrong.get_json()["message"]
    b = Browser(app)
    b.get("/signin")
    assert b.post("/signin", {"username": "clerk", "password": PASSWORD}).status_code == 401
    with app.app_context():
        s = app.extensions["inkless.db"]()
        assert s.scalar(select(func.count()).where(AuditEvent.action == "login_failed")) == 8
        s.close()
    # The attempts while locked count too; 15 minutes after the last of them the lock has lifted.
    frozen.advance(minutes=15, seconds=1)
    assert _token(client, "clerk").status_code == 200
    # A success clears the slate: the earlier failures no longer count.
    for _ in range(4):
        assert _token(client, "clerk", "not the password").status_code == 401
    assert _token(client, "clerk").status_code == 200


def test_sign_in_is_rate_limited_per_address(app, org, client):
    """R-SEC-2: past the limit the sign-in endpoints answer 429 with a message, pages and API alike."""
    cfg = app.config["INKLESS"]
    cfg.ratelimit_enabled, cfg.login_rate_limit = True, "3 per minute"
    for _ in range(3):
        assert _token(client, "nobody", "guess").status_code == 401
    r = _token(client, "clerk")
    assert r.status_code == 429 and "登录尝试次数过多" in r.get_json()["message"]
    b = Browser(app)
    b.get("/signin")
    page = b.post("/signin", {"username": "clerk", "password": PASSWORD})
    assert page.status_code == 429 and "登录尝试次数过多" in text(page)
    # Another address is not affected.
    other = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def _change(app, username, new, old=PASSWORD):
    b = Browser(app)
    b.sign_in(username, old)
    b.get("/password")
    return b.post("/password", {"old_password": old, "new_password": new, "new_password_again": new})


def test_the_asvs_profile(app, org):
    """R-SEC-1, ASVS 2.1: ≥ 12 characters, not a common password, not containing the username."""
    assert "至少需要 12 个字符" in text(_change(app, "clerk", "short pass"))
    assert "常见、易被猜中的密码" in text(_change(app, "clerk", "1qaz2wsx3edc"))
    assert "不得包含用户名" in text(_change(app, "clerk", "i am the Clerk here"))
    assert _change(app, "clerk", "lowercase words only ok").status_code == 302  # no composition rules


def test_the_mlps3_profile_and_its_90_day_change(app, org, client, frozen):
    """R-SEC-1, MLPS 2.0 level 3: ≥ 8 characters of three classes, changed every 90 days."""
    app.config["INKLESS"].password_profile = "mlps3"
    admin = Browser(app)
    admin.sign_in("sysadmin")
    assert "等保 2.0 第三级" in text(admin.get("/account"))
    assert "至少包含以下四类字符中的三类" in text(_change(app, "clerk", "alllowercase"))
    assert _change(app, "clerk", "Seven7even").status_code == 302
    frozen.advance(days=89)
    b = Browser(app)
    b.sign_in("clerk", "Seven7even")
    assert b.get("/").status_code == 200
    frozen.advance(days=1)
    b = Browser(app)
    r = b.sign_in("clerk", "Seven7even")
    assert r.headers["Location"].startswith("/password")


def test_an_administrator_resets_a_password_which_must_then_be_changed(app, org, login, client):
    """R-ACC-3: only the system admin or the user's own department admin; temporary password shown
    once; every session of the user ends; the user must change it at the next sign-in."""
    clerk = login("clerk")
    users = login("office_admin").get("/api/v1/users").get_json()["items"]
    clerk_id = next(u["id"] for u in users if u["username"] == "clerk")
    assert login("fin_admin").post(f"/api/v1/users/{clerk_id}/password-reset").status_code == 403
    r = login("office_admin").post(f"/api/v1/users/{clerk_id}/password-reset")
    assert r.status_code == 200
    temporary = r.get_json()["temporary_password"]
    assert clerk.get("/api/v1/tasks").status_code == 401
    assert _token(client, "clerk").status_code == 401
    b = Browser(app)
    assert b.sign_in("clerk", temporary).headers["Location"].startswith("/password")
    assert b.get("/tasks").headers["Location"].startswith("/password")
    # The page way, by the system admin.
    admin = Browser(app)
    admin.sign_in("sysadmin")
    listing = text(admin.get("/account/users"))
    assert "clerk" in listing and "OWASP ASVS 4" in listing
    shown = admin.post(f"/account/users/{clerk_id}/reset")
    assert shown.status_code == 200 and 'id="temporary-password"' in text(shown)
    office = Browser(app)
    office.sign_in("office_admin")
    assert "fin_head" not in text(office.get("/account/users"))


def test_a_department_administrator_cannot_reset_an_administrator(app, org, login):
    """R-SEC-7: no escalation through a reset — not the system admin, not a fellow department admin."""
    from service import org as org_module

    with app.app_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "platform_admin2", PASSWORD, "PLATFORM", "dept_admin")
        org_module.create_user(s, "office_admin2", PASSWORD, "OFFICE", "dept_admin")
        s.commit()
        s.close()
    ids = {u["username"]: u["id"] for u in login("sysadmin").get("/api/v1/users").get_json()["items"]}
    assert login("platform_admin2").post(f"/api/v1/users/{ids['sysadmin']}/password-reset").status_code == 403
    assert login("platform_admin2").post(f"/api/v1/users/{ids['platform']}/password-reset").status_code == 200
    assert login("office_admin2").post(f"/api/v1/users/{ids['office_admin']}/password-reset").status_code == 403
    assert login("sysadmin").post(f"/api/v1/users/{ids['office_admin']}/password-reset").status_code == 200


def test_a_change_of_the_security_settings_is_audited(app, org):
    """R-SEC-1: the settings a server starts with are audited when they differ from the last ones."""
    from service.identity import policy

    cfg = app.config["INKLESS"]
    with app.app_context():
        s = app.extensions["inkless.db"]()
        assert policy.record_if_changed(s, cfg)
        assert not policy.record_if_changed(s, cfg)
        cfg.password_profile = "mlps3"
        assert policy.record_if_changed(s, cfg)
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "security_policy")).all()
        assert [e.detail["password_profile"] for e in events] == ["asvs", "mlps3"]
        s.rollback()
        s.close()


def test_every_refused_sign_in_does_the_same_argon2_work(app, org, client, frozen, monkeypatch):
    """ASVS 2.2.1 (R-SEC-2): an unknown user, a wrong password, a deactivated and a locked account
    (the last two with the right password) each cost exactly one argon2 verification, of the
    parameters a real account's hash has, and get the same answer — on the page and the API alike.
    Counted, not timed: the time follows from the work."""
    with app.app_context():
        s = app.extensions["inkless.db"]()
        s.execute(update(User).where(User.username == "fin_head").values(active=False))
        s.commit()
        real_parameters = argon2.extract_parameters(s.scalar(select(User.password_hash).where(User.username == "clerk")))
        s.close()
    for _ in range(5):
        assert _token(client, "fin_admin", "not the password").status_code == 401
    verified = []
    real_verify = argon2._password_hasher.verify_secret

    def counting(hash: bytes, secret: bytes, type_):
        verified.append(argon2.extract_parameters(hash.decode()))
        return real_verify(hash, secret, type_)

    monkeypatch.setattr(argon2._password_hasher, "verify_secret", counting)

    def page(username, password):
        b = Browser(app)
        b.get("/signin")
        r = b.post("/signin", {"username": username, "password": password})
        return r.status_code, re.search(r'role="alert"[^>]*>([^<]*)<', text(r)).group(1).strip() if r.status_code == 401 else ""

    def api(username, password):
        r = _token(client, username, password)
        return r.status_code, r.get_json().get("message") if r.status_code == 401 else ""

    cases = {"unknown": ("nobody", PASSWORD), "wrong password": ("clerk", "not the password"),
             "deactivated": ("fin_head", PASSWORD), "locked": ("fin_admin", PASSWORD)}
    for channel in (page, api):
        answers = set()
        for case, (username, password) in cases.items():
            verified.clear()
            status, message = channel(username, password)
            assert status == 401, (channel.__name__, case)
            answers.add(message)
            assert verified == [real_parameters], (channel.__name__, case)
        assert len(answers) == 1 and answers != {""}, answers
        verified.clear()
        assert channel("clerk", PASSWORD)[0] in (200, 302)
        assert verified == [real_parameters]
