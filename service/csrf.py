"""Cross-site request forgery protection for requests that a browser authenticates by its cookie.

Each browser session holds one random token; every page form carries it in a hidden field and
every state-changing request must send it back (form field `csrf_token` or header
`X-CSRF-Token`; a multipart upload: the header or `?csrf_token=` in the form's action). API calls
with a bearer token are exempt: a browser never adds that header on
its own, so a forged cross-site request cannot carry it. Anonymous API calls without a session
are exempt too (there is no session to ride on). R-SEC-10.
"""
from __future__ import annotations

import hmac
import secrets

from flask import Flask, request, session
from flask_babel import gettext as _

from .errors import Forbidden

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def token() -> str:
    """This session's token (created on first use)."""
    value = session.get(FIELD)
    if not value:
        value = secrets.token_urlsafe(32)
        session[FIELD] = value
    return value


def renew() -> None:
    """A new token for a new sign-in, so a token seen before signing in is worth nothing after."""
    session[FIELD] = secrets.token_urlsafe(32)


def check() -> None:
    expected = session.get(FIELD)
    # Never request.form for a multipart body: parsing it would spool an uploaded (possibly
    # confidential) file to a plaintext temporary file before the upload code could encrypt it.
    # An HTML upload form cannot set a header, so it carries the token in its action's query string.
    if request.mimetype == "multipart/form-data":
        sent = request.headers.get(HEADER) or request.args.get(FIELD) or ""
    else:
        sent = request.headers.get(HEADER) or request.form.get(FIELD) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(_("The form has expired or did not come from this site. Reload the page and try again."))


def _exempt() -> bool:
    if request.method in SAFE_METHODS:
        return True
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return True
    # The API without a browser session (sign-in for a bearer token, …) has nothing to forge.
    return request.path.startswith("/api/") and not session.get("token")


def init_app(app: Flask) -> None:
    @app.before_request
    def _protect() -> None:
        if not _exempt():
            check()

    app.jinja_env.globals["csrf_token"] = token
