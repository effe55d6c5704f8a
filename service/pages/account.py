"""Signing in and out of the workspace, and changing one's password.

A browser session is an AuthToken of kind `session`, like an API token: only its hash is stored,
the raw value lives in the signed session cookie (HttpOnly, SameSite=Lax, Secure unless turned off
for local HTTP), and signing out revokes it on the server.
"""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from .. import auth, csrf, db
from ..errors import Invalid, Unauthorized
from . import safe_next

bp = Blueprint("account", __name__)


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
        with db.unit_of_work() as s:
            raw, _token, user = auth.login(s, username, password, kind="session")
    except Unauthorized as e:
        return render_template("sign_in.html", next=target, username=username, error=e.message), 401
    # A fresh session: nothing carried over from before signing in (session fixation).
    session.clear()
    session["token"] = raw
    csrf.renew()
    if user.must_change_password:
        return redirect(url_for(".change_password", next=target))
    return redirect(target)


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
    return render_template("change_password.html", next=target, errors=errors,
                           must=user.must_change_password, min_length=auth.MIN_PASSWORD_LENGTH), \
        422 if errors else 200
