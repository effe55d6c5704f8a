"""My security settings: the second factor, my sessions and API tokens; and, for administrators,
the active security policy and password resets / session ends for the accounts they administer
(R-SEC-1, R-SEC-6, R-ACC-3)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit_log, auth, db, people, policy
from ..errors import Forbidden, Invalid
from ..identity import mfa, password_policy, security_keys
from ..models import User
from ..passwords import verify_password
from . import enrolling, safe_next, signed_in
from . import people as people_pages

bp = Blueprint("security", __name__, url_prefix="/account")


def _policy() -> dict:
    cfg = current_app.config["INKLESS"]
    return {"profile": password_policy.profile(cfg.password_profile), "cfg": cfg}


@bp.get("")
@signed_in
def profile():
    s = db.session()
    user = g.user
    return render_template("security.html", tokens=auth.my_tokens(s, user), current=g.token.id,
                           factor=mfa.factor(s, user), keys=security_keys.keys(s, user), codes_left=mfa.recovery_codes_left(s, user),
                           admin=user.role in ("dept_admin", "system_admin"), **_policy())


@bp.post("/sessions/<int:token_id>/revoke")
@signed_in
def revoke(token_id: int):
    with db.unit_of_work() as s:
        auth.revoke_mine(s, g.user, token_id)
    flash(_("The session or token was ended."), "ok")
    return redirect(url_for(".profile"))


@bp.route("/mfa", methods=["GET", "POST"], endpoint="mfa")
@enrolling
def mfa_page():
    target = safe_next(request.values.get("next"), url_for(".profile"))
    user = g.user
    error = None
    with db.unit_of_work() as s:
        if mfa.factor(s, user) is not None:  # one authenticator app at a time
            return redirect(url_for(".profile"))
        row, secret = mfa.pending_enrolment(s, user)
        if request.method == "POST":
            codes = mfa.confirm(s, user, row, request.form.get("code", ""))
            if codes is not None:
                return render_template("mfa_codes.html", codes=codes, next=target)
            error = _("The code is wrong or was already used. Enter the code your app shows now.")
        uri = mfa.provisioning_uri(user, secret)
    must = mfa.must_enrol(db.session(), user)
    return render_template("mfa.html", secret=secret, qr=mfa.qr_data_uri(uri), error=error, must=must,
                           next=target), 422 if error else 200


@bp.post("/mfa/disable")
@signed_in
def mfa_disable():
    user = g.user
    s = db.session()
    if not verify_password(user.password_hash, request.form.get("password", "")) \
            or mfa.verify(s, user, request.form.get("code", "")) is None:
        s.rollback()
        flash(_("The authenticator was not removed: the password or the code is wrong."), "error")
        return redirect(url_for(".profile"))
    with db.unit_of_work() as s:
        mfa.disable(s, user)
    flash(_("The authenticator was removed."), "ok")
    return redirect(url_for(".profile"))


@bp.post("/keys/options")
@enrolling
def key_options():
    """A WebAuthn registration challenge (JSON for webauthn.js)."""
    with db.unit_of_work() as s:
        options = security_keys.registration_options(s, g.user, g.token)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/keys")
@enrolling
def key_register():
    """Register the security key's answer; a first factor also gets its recovery codes (shown once)."""
    body = request.get_json(silent=True) or {}
    try:
        with db.unit_of_work() as s:
            security_keys.register(s, g.user, g.token, body.get("credential") or {}, str(body.get("name") or ""))
            codes = mfa.first_recovery_codes(s, g.user)
    except Invalid as e:
        return jsonify({"message": e.message, "details": e.details}), 422
    return jsonify({"codes": codes, "next": safe_next(body.get("next"), url_for(".profile"))})


@bp.post("/keys/<int:key_id>/remove")
@signed_in
def key_remove(key_id: int):
    user = g.user
    s = db.session()
    if not verify_password(user.password_hash, request.form.get("password", "")) \
            or mfa.verify(s, user, request.form.get("code", "")) is None:
        s.rollback()
        flash(_("The security key was not removed: the password or the code is wrong."), "error")
        return redirect(url_for(".profile"))
    with db.unit_of_work() as s:
        security_keys.remove(s, user, key_id)
    flash(_("The security key was removed."), "ok")
    return redirect(url_for(".profile"))


def _require_admin() -> User:
    if g.user.role not in ("dept_admin", "system_admin"):
        raise Forbidden(_("Only administrators may do this."))
    return g.user


@bp.get("/users")
@signed_in
def users():
    """The accounts an administrator reads, searched and filtered (people.listing, as the API's scope)."""
    admin = _require_admin()
    s = db.session()
    args = {name: request.args.get(name, "").strip()[:100] for name in ("q", "department", "role", "state")}
    rows = people.listing(s, admin, **args)
    for row in rows:
        audit_log.note_read("user", row.id)
    return render_template("admin_users.html", users=rows, args=args,
                           administrable={u.id for u in rows if auth.may_administer(admin, u)}, role_names=people_pages.role_names(), may_create=policy.allows(admin, "manage", "user"),
                           **people_pages.filters(s, admin), **_policy())


@bp.post("/users/<int:user_id>/reset")
@signed_in
def reset(user_id: int):
    admin = _require_admin()
    with db.unit_of_work() as s:
        user, temporary = auth.reset_password(s, admin, user_id)
    return render_template("password_reset.html", user=user, temporary=temporary)


@bp.post("/users/<int:user_id>/sessions/end")
@signed_in
def end_sessions(user_id: int):
    admin = _require_admin()
    with db.unit_of_work() as s:
        ended = auth.end_sessions(s, admin, user_id)
    flash(_("%(n)s sessions and tokens were ended.", n=ended), "ok")
    return redirect(url_for(".users"))


@bp.post("/users/<int:user_id>/mfa-reset")
@signed_in
def mfa_reset(user_id: int):
    admin = _require_admin()
    try:
        with db.unit_of_work() as s:
            user, _ended = auth.reset_second_factor(s, admin, user_id, request.form.get("reason", ""))
            username = user.username
    except Invalid:
        flash(_("The second factor was not reset: give a reason."), "error")
        return redirect(url_for(".users"))
    flash(_("The second factor of %(username)s was reset; all their sessions ended.", username=username), "ok")
    return redirect(url_for(".users"))
