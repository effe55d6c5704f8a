"""Signing in and out of the workspace, and changing one's password.

A browser session is an AuthToken of kind `session`, like an API token: only its hash is stored,
the raw value lives in the signed session cookie (HttpOnly, SameSite=Lax, Secure unless turned off
for local HTTP), and signing out revokes it on the server.

Signing in with a second factor takes two steps. After the password, the cookie holds only a
`pending` marker: a server-side record that signs nobody in, lives five minutes and takes five
wrong codes at most; the code step then issues the session (R-SEC-6).
"""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from .. import auth, csrf, db, ratelimit
from ..errors import Invalid, Unauthorized
from ..identity import mfa, password_policy, security_keys
from ..ratelimit import TooManyAttempts
from . import safe_next

bp = Blueprint("account", __name__)


def _start_session(raw: str) -> None:
    # A fresh session: nothing carried over from before signing in (session fixation).
    session.clear()
    session["token"] = raw
    csrf.renew()


@bp.route("/signin", methods=["GET", "POST"])
def sign_in():
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if getattr(g, "user", None) is not None:
            return redirect(target)
        return render_template("sign_in.html", next=target, username="", error=None)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    try:
        ratelimit.sign_in_attempt()
        with db.unit_of_work() as s:
            user = auth.check_password(s, username, password)
            if mfa.has_factor(s, user):
                pending = auth.begin_second_step(s, user)
            else:
                pending = None
                raw, _token = auth.signed_in(s, user, "session", None)
    except (Unauthorized, TooManyAttempts) as e:
        return render_template("sign_in.html", next=target, username=username, error=e.message), e.status
    if pending is not None:
        session.clear()
        session["pending"] = pending
        csrf.renew()
        return redirect(url_for(".second_step", next=target))
    _start_session(raw)
    if user.must_change_password:
        return redirect(url_for(".change_password", next=target))
    return redirect(target)


@bp.route("/signin/code", methods=["GET", "POST"])
def second_step():
    target = safe_next(request.values.get("next"))
    s = db.session()
    found = auth.pending_user(s, session.get("pending"))
    if found is None:
        session.pop("pending", None)
        return redirect(url_for(".sign_in", next=target))
    if request.method == "GET":
        return render_template("sign_in_code.html", next=target, error=None,
                               has_key=mfa.has_security_key(s, found[1]))
    try:
        ratelimit.sign_in_attempt()
    except TooManyAttempts as e:
        return render_template("sign_in_code.html", next=target, error=e.message), e.status
    token, user = found
    if request.is_json:  # the security key's answer, sent by webauthn.js
        return _key_answer(token, user, target)
    with db.unit_of_work() as s:
        issued = auth.finish_second_step(s, token, user, request.form.get("code", ""))
        gave_up = token.revoked_at is not None and issued is None
    if issued is None:
        if gave_up:
            session.pop("pending", None)
            return render_template("sign_in.html", next=target, username=user.username,
                                   error=_("Too many wrong codes. Sign in again.")), 401
        return render_template("sign_in_code.html", next=target, error=_("The code is wrong or was already used."),
                               has_key=mfa.has_security_key(s, user)), 401
    _start_session(issued[0])
    if user.must_change_password:
        return redirect(url_for(".change_password", next=target))
    return redirect(target)


@bp.post("/signin/key/options")
def key_options():
    """The WebAuthn challenge for the pending sign-in (JSON for webauthn.js)."""
    s = db.session()
    found = auth.pending_user(s, session.get("pending"))
    if found is None:
        return jsonify({"message": _("Sign in again.")}), 401
    with db.unit_of_work() as s:
        options = security_keys.authentication_options(s, found[1], found[0])
    return current_app.response_class(options, mimetype="application/json")


def _key_answer(token, user, target: str):
    with db.unit_of_work() as s:
        issued = auth.finish_second_step(s, token, user, credential=request.get_json(silent=True) or {})
        gave_up = token.revoked_at is not None and issued is None
    if issued is None:
        if gave_up:
            session.pop("pending", None)
        return jsonify({"message": _("The security key was not accepted.")}), 401
    _start_session(issued[0])
    return jsonify({"next": url_for(".change_password", next=target) if user.must_change_password else target})


@bp.post("/signout")
def sign_out():
    token = getattr(g, "token", None)
    if token is not None:
        with db.unit_of_work() as s:
            auth.logout(s, token)
    session.clear()
    return redirect(url_for(".sign_in"))


@bp.route("/password", methods=["GET", "POST"])
def change_password():
    user = getattr(g, "user", None)
    if user is None:
        return redirect(url_for(".sign_in", next=request.path))
    target = safe_next(request.values.get("next"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        old = request.form.get("old_password", "")
        new = request.form.get("new_password", "")
        if new != request.form.get("new_password_again", ""):
            errors["new_password_again"] = _("The two new passwords differ.")
        else:
            try:
                with db.unit_of_work() as s:
                    auth.change_password(s, user, old, new, keep=g.token)
                return redirect(target)
            except Invalid as e:
                errors = {d["field"]: d["message"] for d in e.details}
    rules = auth.password_rules()
    return render_template("change_password.html", next=target, errors=errors, must=user.must_change_password,
                           min_length=rules.min_length, rules=password_policy.describe(rules)), \
        422 if errors else 200
