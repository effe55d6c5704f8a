"""Sessions (R-SEC-2, ASVS V3): idle and absolute timeouts, my sessions and tokens with revoke,
an administrator ending all of a user's sessions, cookie flags and security headers."""
from __future__ import annotations

import re

from service import create_app
from tests.conftest import make_config
from tests.service.test_pages import Browser, text


def test_idle_timeout_and_absolute_timeout(app, org, frozen):
    """ASVS 3.3.2: 30 minutes idle end a page session; so do 12 hours however busy."""
    b = Browser(app)
    b.sign_in("clerk")
    frozen.advance(minutes=29)
    assert b.get("/").status_code == 200
    frozen.advance(minutes=29)  # idle time counts from the last request
    assert b.get("/").status_code == 200
    frozen.advance(minutes=31)
    assert b.get("/").headers["Location"].startswith("/signin")

    busy = Browser(app)
    busy.sign_in("clerk")
    for _ in range(35):  # a request every 20 minutes for 11 h 40 min
        frozen.advance(minutes=20)
        assert busy.get("/").status_code == 200
    frozen.advance(minutes=21)
    assert busy.get("/").headers["Location"].startswith("/signin")


def test_last_seen_is_written_at_most_once_a_minute(app, org, login, frozen):
    """A busy page does not write the session row on every request."""
    b = Browser(app)
    b.sign_in("clerk")
    mine = login("clerk")

    def seen():
        return next(t["last_seen_at"] for t in mine.get("/api/v1/auth/tokens").get_json()["items"]
                    if t["kind"] == "session")

    first = seen()
    frozen.advance(seconds=40)
    b.get("/")
    assert seen() == first
    frozen.advance(seconds=30)
    b.get("/")
    assert seen() != first


def test_i_see_and_end_my_sessions_and_tokens(app, org, login, frozen):
    """ASVS 3.3.4: my sessions and API tokens are listed and each can be ended; it ends at once."""
    laptop, phone = Browser(app), Browser(app)
    laptop.sign_in("clerk")
    phone.sign_in("clerk")
    api = login("clerk")
    items = api.get("/api/v1/auth/tokens").get_json()["items"]
    assert sorted(t["kind"] for t in items) == ["api", "session", "session"]
    assert [t["current"] for t in items if t["kind"] == "api"] == [True]
    page = text(laptop.get("/account"))
    assert page.count("浏览器会话") == 2 and "当前会话" in page
    forms = re.findall(r'action="(/account/sessions/\d+/revoke)"', page)
    assert len(forms) == 2  # the phone's session and the API token, not this one
    phone_id = next(t["id"] for t in items if t["kind"] == "session"
                    and f"/account/sessions/{t['id']}/revoke" in forms)
    assert laptop.post(f"/account/sessions/{phone_id}/revoke").status_code == 302
    assert phone.get("/").headers["Location"].startswith("/signin")
    assert laptop.get("/").status_code == 200
    # Through the API: someone else's token is not found; my own ends.
    other = login("office_head").get("/api/v1/auth/tokens").get_json()["items"][0]["id"]
    assert api.client.delete(f"/api/v1/auth/tokens/{other}", headers=api._headers()).status_code == 404
    mine = next(t["id"] for t in items if t["kind"] == "api")
    assert api.client.delete(f"/api/v1/auth/tokens/{mine}", headers=api._headers()).status_code == 204
    assert api.get("/api/v1/auth/tokens").status_code == 401


def test_an_administrator_ends_every_session_of_a_user(app, org, login):
    """R-ACC-3: the department administrator (or system admin) ends all of a user's sessions."""
    b = Browser(app)
    b.sign_in("clerk")
    clerk = login("clerk")
    clerk_id = next(u["id"] for u in login("office_admin").get("/api/v1/users").get_json()["items"]
                    if u["username"] == "clerk")
    admin = login("office_admin")
    r = admin.client.delete(f"/api/v1/users/{clerk_id}/sessions", headers=admin._headers())
    assert r.status_code == 200 and r.get_json()["ended"] == 2
    assert clerk.get("/api/v1/tasks").status_code == 401
    assert b.get("/").headers["Location"].startswith("/signin")


def test_security_headers_and_cookie_flags(tmp_path, database_template, org, client):
    """R-SEC-2: HSTS over HTTPS, nosniff, same-origin referrer, no framing; the session cookie is
    __Host- prefixed, Secure, HttpOnly and SameSite=Lax where cookies are secure."""
    plain = client.get("/signin")
    assert "Strict-Transport-Security" not in plain.headers
    secure = client.get("/signin", base_url="https://inkless.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    for r in (plain, secure, client.get("/api/v1/tasks")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]

    (tmp_path / "secure").mkdir()
    config = make_config(tmp_path / "secure", database_template)
    config.session_cookie_secure = True
    secure_app = create_app(config)
    r = secure_app.test_client().get("/signin", base_url="https://inkless.example")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-inkless=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    secure_app.extensions["inkless.engine"].dispose()
