"""The second factor and login defences in a real browser against a real server (R-SEC-6, R-SEC-2).

A department administrator — obliged by policy to have a second factor — signs in by password and
is sent straight to set up an authenticator: the test reads the key from the page and computes
codes with pyotp like a phone app would. Then: sign out, a wrong code (refused), a good code (in),
the same code again (a replay: refused), a recovery code (in) and that recovery code again
(refused); finally five wrong passwords lock another account, whose right password is then refused
with the same message. Screenshots in test-artifacts/, axe on every new page.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.browser.test_workspace import Person, browser  # noqa: F401  (the browser fixture)
from tests.conftest import PASSWORD
from tests.service.identity_helpers import code as totp_code
from tests.service.test_durability import Server


@pytest.fixture
def server(app, org):
    server = Server(app)
    server.env.update(INKLESS_INSECURE_COOKIES="1", INKLESS_MFA_ENFORCED="1")
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.kill()


def _next_step_code(secret: str, after: str) -> str:
    """A code of a later time step than `after` (waits for the step to turn, at most 30 s)."""
    while (now := totp_code(secret)) == after:
        time.sleep(1)
    return now


def _code_step(person: Person, code: str):
    person.page.wait_for_url(re.compile(r".*/signin/code.*"))
    person.page.get_by_label("验证码").fill(code)
    person.page.get_by_role("button", name="登录").click()


def _sign_out(person: Person):
    person.page.get_by_role("button", name="退出").click()
    person.page.wait_for_url(re.compile(r".*/signin$"))


def test_totp_enrolment_two_step_sign_in_replay_recovery_and_lockout(server, browser):  # noqa: F811
    admin = Person(browser, server, "office_admin")
    admin.sign_in("office_admin")
    # Obliged by policy: straight to setting up an authenticator, and nothing else is reachable.
    admin.page.wait_for_url(re.compile(r".*/account/mfa.*"))
    admin.goto("/tasks")
    assert "/account/mfa" in admin.page.url
    admin.shot("mfa-01-enrol")
    admin.check_accessibility("the authenticator set-up page")
    assert admin.page.get_by_role("img", name="用于身份验证器应用的二维码").is_visible()
    secret = admin.page.locator("#totp-secret").inner_text().strip()
    admin.page.get_by_label("应用中的验证码").fill("000000" if totp_code(secret) != "000000" else "111111")
    admin.page.get_by_role("button", name="启用").click()
    assert "验证码错误或已被使用" in admin.page.get_by_role("alert").inner_text()
    enrol_code = totp_code(secret)
    admin.page.get_by_label("应用中的验证码").fill(enrol_code)
    admin.page.get_by_role("button", name="启用").click()
    shown = admin.page.locator("#recovery-codes code")
    shown.first.wait_for()  # the answer's page, not the form's
    codes = [c.strip() for c in shown.all_inner_texts()]
    assert len(codes) == 10
    admin.shot("mfa-02-recovery-codes")
    admin.check_accessibility("the recovery codes page")
    admin.page.get_by_role("link", name="继续").click()
    admin.goto("/account")
    assert "剩余恢复码：10 个" in admin.page.locator("main").inner_text()
    admin.shot("mfa-03-security-page")
    admin.check_accessibility("the security page")
    _sign_out(admin)

    # Password, then a wrong code: refused.
    admin.sign_in("office_admin")
    admin.page.wait_for_url(re.compile(r".*/signin/code.*"))
    admin.shot("mfa-04-code-step")
    admin.check_accessibility("the code page")
    good = _next_step_code(secret, after=enrol_code)
    _code_step(admin, "000000" if good != "000000" else "111111")
    assert admin.page.get_by_role("alert").inner_text() == "验证码错误或已被使用。"
    admin.shot("mfa-05-wrong-code")
    # A good code: in.
    _code_step(admin, good)
    admin.page.wait_for_url(server + "/")
    assert "欢迎" in admin.page.get_by_role("heading", level=1).inner_text()
    _sign_out(admin)

    # The same code again, still within its 30 seconds: a replay, refused.
    admin.sign_in("office_admin")
    _code_step(admin, good)
    assert admin.page.get_by_role("alert").inner_text() == "验证码错误或已被使用。"
    admin.shot("mfa-06-replayed-code")
    # A recovery code: in, once.
    _code_step(admin, codes[0])
    admin.page.wait_for_url(server + "/")
    _sign_out(admin)
    admin.sign_in("office_admin")
    _code_step(admin, codes[0])
    assert admin.page.get_by_role("alert").inner_text() == "验证码错误或已被使用。"
    admin.shot("mfa-07-recovery-code-reused")

    # Lockout: five wrong passwords, then the right one gets the same answer.
    clerk = Person(browser, server, "clerk")
    for _ in range(5):
        clerk.sign_in("clerk", "not the password")
        assert clerk.page.get_by_role("alert").inner_text() == "用户名或密码错误。"
    clerk.sign_in("clerk", PASSWORD)
    assert clerk.page.get_by_role("alert").inner_text() == "用户名或密码错误。"
    assert "/signin" in clerk.page.url
    clerk.shot("mfa-08-locked-out")

    for person in (admin, clerk):
        assert not person.problems, f"{person.name}'s browser reported: {person.problems}"


def test_a_security_key_registered_and_used_in_the_browser(server, browser):  # noqa: F811
    """R-SEC-6: service/static/webauthn.js against Chromium's virtual authenticator (DevTools
    WebAuthn domain). WebAuthn needs a domain as RP ID, so the browser uses localhost."""
    base = server.replace("127.0.0.1", "localhost")
    clerk = Person(browser, base, "clerk")
    cdp = clerk.context.new_cdp_session(clerk.page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": False, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(base + "/")
    clerk.goto("/account")
    clerk.page.get_by_label("密钥名称").fill("测试密钥")
    clerk.page.get_by_role("button", name="添加安全密钥").click()
    codes = clerk.page.locator("#key-codes code")
    codes.first.wait_for()
    assert codes.count() == 10  # the first factor brings the recovery codes, shown once
    clerk.shot("mfa-09-key-registered")
    clerk.check_accessibility("the security page with new recovery codes")
    clerk.page.get_by_role("link", name="继续").click()
    clerk.page.wait_for_url(base + "/account")
    assert "测试密钥" in clerk.page.locator("main").inner_text()
    _sign_out(clerk)

    clerk.sign_in("clerk")
    clerk.page.wait_for_url(re.compile(r".*/signin/code.*"))
    clerk.check_accessibility("the code page with a security key")
    clerk.shot("mfa-10-key-sign-in")
    clerk.page.get_by_role("button", name="使用我的安全密钥").click()
    clerk.page.wait_for_url(base + "/")
    assert "欢迎" in clerk.page.get_by_role("heading", level=1).inner_text()
    assert not clerk.problems, f"clerk's browser reported: {clerk.problems}"
