"""Rate limits per client address on the sign-in endpoints (R-SEC-2, ASVS 2.2.1).

One Flask-Limiter per app; the views call `sign_in_attempt()` before checking anything, so a
flood of guesses is answered 429 without touching the password hashes. The password page, the
code page and the API token share one count per address (a hit on the limiter's strategy under
one key), so switching endpoints buys an attacker nothing. Storage is in memory by
default (per process); INKLESS_RATELIMIT_STORAGE takes a shared store's URL for several workers.
Behind a reverse proxy, configure it to pass the client address (werkzeug ProxyFix) so the limit
is per client rather than per proxy.
"""
from __future__ import annotations

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse

from .errors import ApiError


class TooManyAttempts(ApiError):
    status = 429
    code = "too_many_requests"


def sign_in_attempt() -> None:
    """Count one sign-in attempt from this address; raises TooManyAttempts past the limit."""
    cfg = current_app.config["INKLESS"]
    if not cfg.ratelimit_enabled:  # read per request, so a test can turn the limit on and off
        return
    limiter: Limiter = current_app.extensions["inkless.limiter"]
    if not limiter.limiter.hit(parse(cfg.login_rate_limit), "inkless-sign-in", get_remote_address()):
        raise TooManyAttempts(_("Too many sign-in attempts from your address. Wait a minute and try again."))


def init_app(app: Flask) -> None:
    cfg = app.config["INKLESS"]
    limiter = Limiter(get_remote_address, app=app, storage_uri=cfg.ratelimit_storage, default_limits=[])
    app.extensions["inkless.limiter"] = limiter
