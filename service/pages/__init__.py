"""The staff workspace: server-rendered pages over the same service functions as the REST API.

One blueprint per area (account, home, tasks, requests), nested under `pages` so they share the
hooks here: sign-in required (and a password change first when one is due), the language cookie,
a strict Content-Security-Policy (no inline script or style anywhere), and errors shown as pages
in the user's language instead of the API's JSON.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy.orm.exc import StaleDataError

from .. import db, field_formats, i18n, ratelimit
from ..errors import ApiError, Unauthorized
from ..identity import mfa

CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")

bp = Blueprint("pages", __name__)


def _gate(view: Callable, enrolment_due_ok: bool) -> Callable:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        user = getattr(g, "user", None)
        if user is None:
            return redirect(url_for("pages.account.sign_in", next=_here()))
        if user.must_change_password:
            return redirect(url_for("pages.account.change_password", next=_here()))
        g.mfa_due = mfa.must_enrol(db.session(), user)
        if g.mfa_due and not enrolment_due_ok:
            return redirect(url_for("pages.security.mfa", next=_here()))
        return view(*args, **kwargs)
    return wrapper


def signed_in(view: Callable) -> Callable:
    """The page needs a signed-in user whose password is not due for a change and who has the
    second factor the policy asks of them (R-SEC-6)."""
    return _gate(view, enrolment_due_ok=False)


def enrolling(view: Callable) -> Callable:
    """Like signed_in, but reachable while a second factor is still to be set up (the set-up pages)."""
    return _gate(view, enrolment_due_ok=True)


def _here() -> str:
    args = {k: v for k, v in request.args.items() if k != "lang"}
    return request.path + ("?" + urlencode(args) if args else "")


def safe_next(target: str | None, default: str | None = None) -> str:
    """Where to go after a form when the request names it (`next`): only a path on this site, else
    `default` (the home page). Every redirect that takes a place from the request goes through here."""
    if target and _is_local_path(target):
        return target
    return default or url_for("pages.home.index")


def _is_local_path(target: str) -> bool:
    """A path of this origin however a browser reads it. Browsers drop tabs and newlines anywhere
    in a URL and read a backslash as a slash, so `/\t/evil.example` and `/\\evil.example` are
    `//evil.example`, another site; a control character cannot go into a Location header at all.
    So: no control or format character and no backslash anywhere, one leading slash, and the same
    for the path once percent-decoded (a proxy or a second decoding must not make it another site)."""
    if len(target) > 2048 or not _plain(target):
        return False
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return False
    path = parts.path
    for _layer in range(3):
        if not path.startswith("/") or path.startswith("//") or not _plain(path):
            return False
        decoded = unquote(path)
        if decoded == path:
            return True
        path = decoded
    return False  # encoded three times over: nobody's link


def _plain(text: str) -> bool:
    return "\\" not in text and not any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


@bp.after_request
def _headers(response):
    # A page may widen the policy for what it embeds (g.csp); none may allow inline script.
    response.headers["Content-Security-Policy"] = g.get("csp", CSP)
    response.headers.setdefault("Cache-Control", "no-store")
    lang = request.args.get("lang")
    if lang in ("zh", "en") and request.cookies.get("lang") != lang:
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response


@bp.app_template_global()
def lang_url(lang: str) -> str:
    """This page in another language."""
    args = dict(request.args)
    args["lang"] = lang
    return request.path + "?" + urlencode(args)


@bp.app_template_global()
def rate_limit_text(limit: str) -> str:
    """A configured rate limit in the reader's language."""
    return ratelimit.describe(limit)


@bp.app_template_global()
def locale_tag() -> str:
    return "zh-CN" if str(get_locale()) == "zh" else "en"


@bp.app_template_filter("when")
def when(value) -> str:
    """A moment to the minute in the platform's zone (`2026年12月3日 09:30`): the reader's zone
    is unknown on the server, and the regulation is Qinghai's (China Standard Time)."""
    return i18n.moment_text(value) if value else ""


@bp.app_template_filter("day")
def day(value) -> str:
    return i18n.day_text(value) if value else ""


@bp.app_template_filter("size")
def size(value) -> str:
    """A file size in 字节 / KB / MB (Jinja's filesizeformat says "Bytes" in every language)."""
    return i18n.size_text(value)


@bp.app_template_global()
def department_name(code: str | None) -> str:
    return field_formats.name_of("department", code)


@bp.app_template_filter("dept")
def department_label(department) -> str:
    return field_formats.department_label(department)


@bp.app_template_global()
def person_name(username: str | None) -> str:
    return field_formats.name_of("user", username)


@bp.errorhandler(ApiError)
def _api_error(e: ApiError):
    if isinstance(e, Unauthorized):
        return redirect(url_for("pages.account.sign_in", next=_here()))
    return render_template("error.html", message=e.message, status=e.status), e.status


@bp.errorhandler(429)
def _too_many(_e):
    """A rate limit (service/ratelimit.py) answered as a page, not the API's JSON."""
    return render_template("error.html", message=_("Too many requests; try again later."), status=429), 429


@bp.errorhandler(StaleDataError)
def _stale(_e):
    message = _("Someone else changed this instance at the same time; reload and try again.")
    return render_template("error.html", message=message, status=409), 409


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


from . import (  # noqa: E402  (the areas use the helpers above)
    account,
    analytics,
    analytics_evaluations,
    apply,
    audit,
    documents,
    groups,
    help,
    home,
    inspection,
    maintenance,
    notifications,
    people,
    performance,
    person_scores,
    policy,
    requests,
    security,
    settings,
    studio,
    supervise,
    tasks,
)

for _area in (account, security, home, tasks, requests, policy, apply, notifications, settings, supervise, documents, analytics, analytics_evaluations, studio,
              help, maintenance, groups, inspection, audit, people, performance, person_scores):
    bp.register_blueprint(_area.bp)
