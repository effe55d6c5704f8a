"""Shared by the identity tests: enrolling an authenticator through the real pages, and codes."""
from __future__ import annotations

import re
from html import unescape

import pyotp

from engine import clock
from tests.service.test_pages import Browser

SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
RECOVERY = re.compile(r"<code class=\"secret\">([a-z2-9]{5}-[a-z2-9]{5})</code>")


def code(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code for the platform clock's current step (plus some steps)."""
    return pyotp.TOTP(secret).at(int(clock.now().timestamp()) + 30 * steps_ahead)


def enrol(app, username: str) -> tuple[Browser, str, list[str]]:
    """Sign in by password, set up an authenticator on /account/mfa; returns the browser (still
    signed in), the secret and the ten recovery codes shown once."""
    b = Browser(app)
    b.sign_in(username)
    page = b.get("/account/mfa").get_data(as_text=True)
    secret = SECRET.search(page).group(1)
    assert 'src="data:image/svg+xml' in page  # the QR code, inline (CSP allows img-src data:)
    r = b.post("/account/mfa", {"code": code(secret)})
    assert r.status_code == 200, unescape(r.get_data(as_text=True))
    codes = RECOVERY.findall(r.get_data(as_text=True))
    assert len(codes) == 10
    return b, secret, codes
