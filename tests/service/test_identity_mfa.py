"""The second factor (R-SEC-6): TOTP enrolment, two-step sign-in on pages and the API, replay
refused, recovery codes once, the policy that obliges administrators to enrol."""
from __future__ import annotations

from tests.conftest import PASSWORD
from tests.service.identity_helpers import code, enrol
from tests.service.test_pages import Browser, text


def _password_step(app, username="clerk") -> Browser:
    b = Browser(app)
    b.get("/signin")
    r = b.post("/signin", {"username": username, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].startswith("/signin/code")
    assert "输入一次性验证码" in text(b.get(r.headers["Location"]))  # and picks up the new CSRF token
    return b


def test_enrolment_needs_a_first_valid_code(app, org, frozen):
    """R-SEC-6: the factor counts only after a valid code; until then sign-in is by password."""
    b = Browser(app)
    b.sign_in("clerk")
    page = b.get("/account/mfa")
    assert page.status_code == 200 and 'id="totp-secret"' in text(page)
    r = b.post("/account/mfa", {"code": "000000"})
    assert r.status_code == 422 and "验证码错误或已被使用" in text(r)
    again = Browser(app)
    again.sign_in("clerk")  # no factor yet: the password alone still signs in


def test_two_step_sign_in_refuses_a_wrong_and_a_replayed_code(app, org, frozen):
    """R-SEC-6: password, then code; the pending step is no session; a used code never works again."""
    _b, secret, _codes = enrol(app, "clerk")
    b = _password_step(app)
    # Half-signed-in is not signed in: pages and the API both refuse.
    assert b.get("/").headers["Location"].startswith("/signin")
    assert b.client.get("/api/v1/tasks").status_code == 401
    r = b.post("/signin/code", {"code": "123456" if code(secret) != "123456" else "654321"})
    assert r.status_code == 401 and "验证码错误或已被使用" in text(r)
    # The enrolment used this step's code: the same code, still inside its window, is a replay.
    r = b.post("/signin/code", {"code": code(secret)})
    assert r.status_code == 401
    frozen.advance(seconds=30)
    r = b.post("/signin/code", {"code": code(secret)})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert b.get("/").status_code == 200
    # The previous step's code (still within the ±1 step drift window) is refused too.
    assert _password_step(app).post("/signin/code", {"code": code(secret, -1)}).status_code == 401


def test_the_pending_step_ends_after_five_wrong_codes_or_five_minutes(app, org, frozen):
    """ASVS 2.8: the half-signed-in marker is short-lived and takes a limited number of guesses."""
    _b, secret, _codes = enrol(app, "office_head")
    b = _password_step(app, "office_head")
    for _ in range(4):
        assert b.post("/signin/code", {"code": "000001"}).status_code == 401
    r = b.post("/signin/code", {"code": "000001"})
    assert r.status_code == 401 and "验证码错误次数过多" in text(r)
    frozen.advance(seconds=30)
    assert b.post("/signin/code", {"code": code(secret)}).headers["Location"].startswith("/signin")
    # Wrong codes are failed sign-ins: five of them lock the account like five wrong passwords.
    locked = Browser(app)
    locked.get("/signin")
    assert locked.post("/signin", {"username": "office_head", "password": PASSWORD}).status_code == 401
    frozen.advance(minutes=15, seconds=1)
    late = _password_step(app, "office_head")
    frozen.advance(minutes=5, seconds=1)
    assert late.post("/signin/code", {"code": code(secret)}).headers["Location"].startswith("/signin")


def test_a_recovery_code_signs_in_once(app, org, frozen):
    """R-SEC-6: each of the ten recovery codes works exactly once."""
    _b, _secret, codes = enrol(app, "clerk")
    b = _password_step(app)
    assert b.post("/signin/code", {"code": codes[3].upper()}).status_code == 302
    assert _password_step(app).post("/signin/code", {"code": codes[3]}).status_code == 401
    assert _password_step(app).post("/signin/code", {"code": codes[4]}).status_code == 302


def test_the_api_asks_for_the_otp_field(app, org, client, frozen):
    """R-SEC-6: POST /api/v1/auth/token names the missing field `otp`; a code is accepted once."""
    _b, secret, codes = enrol(app, "clerk")
    body = {"username": "clerk", "password": PASSWORD}
    r = client.post("/api/v1/auth/token", json=body)
    assert r.status_code == 401 and "otp" in r.get_json()["message"]
    assert r.get_json()["details"][0]["field"] == "otp"
    frozen.advance(seconds=30)
    ok = client.post("/api/v1/auth/token", json=body | {"otp": code(secret)})
    assert ok.status_code == 200
    replay = client.post("/api/v1/auth/token", json=body | {"otp": code(secret)})
    assert replay.status_code == 401 and "otp" in replay.get_json()["message"]
    assert client.post("/api/v1/auth/token", json=body | {"otp": codes[0]}).status_code == 200
    assert client.post("/api/v1/auth/token", json=body | {"otp": codes[0]}).status_code == 401


def test_administrators_must_enrol_before_anything_else(app, org, client, frozen):
    """R-SEC-6 with INKLESS_MFA_REQUIRED_ROLES: a system admin without a factor reaches only enrolment."""
    app.config["INKLESS"].mfa_enforced = True
    b = Browser(app)
    b.sign_in("sysadmin")
    for path in ("/", "/tasks", "/account"):
        assert b.get(path).headers["Location"].startswith("/account/mfa")
    assert b.client.get("/api/v1/tasks").status_code == 403
    page = b.get("/account/mfa")
    assert page.status_code == 200 and "您的角色要求启用第二认证因素" in text(page)
    r = client.post("/api/v1/auth/token", json={"username": "sysadmin", "password": PASSWORD})
    assert r.status_code == 401 and r.get_json()["details"][0]["field"] == "otp"
    # platform is an ordinary user in the platform_admin group: obliged too; clerk is not.
    assert Browser(app).sign_in("platform").headers["Location"] == "/"
    p = Browser(app)
    p.sign_in("platform")
    assert p.get("/").headers["Location"].startswith("/account/mfa")
    c = Browser(app)
    c.sign_in("clerk")
    assert c.get("/").status_code == 200
    # Once enrolled, the admin goes where they wanted.
    secret = enrol(app, "sysadmin")[1]
    frozen.advance(seconds=30)
    s = _password_step(app, "sysadmin")
    assert s.post("/signin/code", {"code": code(secret)}).status_code == 302
    assert s.get("/").status_code == 200


def test_removing_the_factor_needs_the_password_and_a_code(app, org, frozen):
    """R-SEC-6: a stolen session alone cannot turn the second factor off."""
    b, secret, _codes = enrol(app, "clerk")
    frozen.advance(seconds=30)
    b.get("/account")
    b.post("/account/mfa/disable", {"password": "wrong password", "code": code(secret)})
    assert "剩余恢复码：10 个" in text(b.get("/account"))
    b.post("/account/mfa/disable", {"password": PASSWORD, "code": "000000"})
    assert "剩余恢复码" in text(b.get("/account"))
    r = b.post("/account/mfa/disable", {"password": PASSWORD, "code": code(secret)})
    assert r.status_code == 302
    assert "尚未设置第二认证因素" in text(b.get("/account"))
    Browser(app).sign_in("clerk")  # password alone again
