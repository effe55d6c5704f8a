"""Rate limits per client address (Flask-Limiter): one `limiter` for the whole app (R-SEC-2, ASVS 2.2.1).

Two uses. Views opt in with `@limit(...)` (the public application pages); nothing is limited by
default, and a request to any other view skips Flask-Limiter's per-request work. The sign-in
endpoints call `sign_in_attempt()` before checking anything, so a flood of guesses is answered 429
without touching the password hashes; the password page, the code page and the API token share one
count per address, so switching endpoints buys an attacker nothing. Counters live in memory unless INKLESS_RATELIMIT_STORAGE names a shared store (e.g.
`redis://…`): with several server processes, in-memory counters are per process, so the effective
limit is that many times higher. Behind a reverse proxy, wrap the app in werkzeug's ProxyFix so the
limit is per client rather than per proxy.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, request
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse, parse_many

from .errors import ApiError

limiter = Limiter(key_func=get_remote_address, default_limits=[])
# The view functions that carry a limit, as `limit` returned them (and the app registered them).
_LIMITED: set[Callable] = set()


def limit(value: str, **options) -> Callable:
    """`limiter.limit` for a view, which also marks the view as one the limiter must look at."""
    def decorate(view: Callable) -> Callable:
        limited = limiter.limit(value, **options)(view)
        _LIMITED.add(limited)
        return limited
    return decorate


@limiter.request_filter
def _unlimited() -> bool:
    """Every request that reaches no limited view skips the limiter: resolving the limits of a
    view that has none cost more per request than recalling the caller (issue 16)."""
    return current_app.view_functions.get(request.endpoint or "") not in _LIMITED


class TooManyAttempts(ApiError):
    status = 429
    code = "too_many_requests"


def sign_in_attempt() -> None:
    """Count one sign-in attempt from this address; raises TooManyAttempts past the limit."""
    cfg = current_app.config["INKLESS"]
    if not cfg.ratelimit_enabled:  # read per request, so a test can turn the limit on and off
        return
    if not limiter.limiter.hit(parse(cfg.login_rate_limit), "inkless-sign-in", get_remote_address()):
        raise TooManyAttempts(_("Too many sign-in attempts from your address. Wait a minute and try again."))


def describe(limit: str) -> str:
    """A limit as people read it ("10 per minute" -> "每分钟 10 次" in Chinese), for the policy page."""
    units = {"second": _("%(n)s per second"), "minute": _("%(n)s per minute"), "hour": _("%(n)s per hour"),
             "day": _("%(n)s per day"), "month": _("%(n)s per month"), "year": _("%(n)s per year")}
    try:
        items = parse_many(limit)
    except ValueError:
        return limit
    out = []
    for item in items:
        text = units.get(item.GRANULARITY.name)
        if text is None or item.multiples != 1:
            return limit  # "10 per 5 minutes" and the like: shown as configured
        out.append(text % {"n": item.amount})
    return "；".join(out)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["INKLESS"].ratelimit_storage)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
