"""Who is calling: bearer tokens for the API, a server-side session record for pages.

A token is 32 random bytes shown once; the database keeps only its SHA-256, so a leaked database
does not leak live sessions. Deactivating a user or revoking a token takes effect on the next
request because every request looks the record up.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, request
from flask import session as cookie
from flask_babel import gettext as _
from sqlalchemy import select, update

from . import audit, db
from .errors import Forbidden, Invalid, Unauthorized
from .models import AuthToken, User, utcnow
from .passwords import burn_time, hash_password, verify_password

MIN_PASSWORD_LENGTH = 10


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("ascii", "ignore")).hexdigest()


def issue_token(s, user: User, kind: str = "api") -> tuple[str, AuthToken]:
    raw = secrets.token_urlsafe(32)
    ttl = current_app.config["INKLESS"].token_ttl_seconds
    token = AuthToken(token_hash=_digest(raw), user_id=user.id, kind=kind,
                      expires_at=utcnow() + timedelta(seconds=ttl))
    s.add(token)
    s.flush()
    return raw, token


def login(s, username: str, password: str, kind: str = "api") -> tuple[str, AuthToken, User]:
    """Check a password and issue a token; the same answer for an unknown user and a wrong password."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        burn_time(password)
    if user is None or not user.active or not verify_password(user.password_hash, password):
        audit.record(s, "login_failed", "user", username, actor_id=user.id if user else None)
        s.commit()
        raise Unauthorized(_("Wrong username or password."))
    raw, token = issue_token(s, user, kind)
    audit.record(s, "login", "user", user.id, actor_id=user.id, detail={"kind": kind})
    return raw, token, user


def logout(s, token: AuthToken) -> None:
    token.revoked_at = utcnow()
    audit.record(s, "logout", "user", token.user_id, actor_id=token.user_id, detail={"kind": token.kind})


def change_password(s, user: User, old: str, new: str, keep: AuthToken | None = None) -> None:
    """Set a new password (the initial one must be changed at first sign-in, R-ACC-2); every other
    session and token of the user ends."""
    errors = []
    if not verify_password(user.password_hash, old):
        errors.append({"field": "old_password", "message": _("The current password is wrong.")})
    if len(new) < MIN_PASSWORD_LENGTH:
        errors.append({"field": "new_password",
                       "message": _("The new password needs at least %(n)s characters.", n=MIN_PASSWORD_LENGTH)})
    elif new == old:
        errors.append({"field": "new_password", "message": _("The new password must differ from the current one.")})
    if errors:
        raise Invalid(_("The password was not changed."), errors)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    others = update(AuthToken).where(AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None))
    if keep is not None:
        others = others.where(AuthToken.id != keep.id)
    s.execute(others.values(revoked_at=utcnow()))
    audit.record(s, "password_changed", "user", user.id, actor_id=user.id)


def _load_user() -> None:
    g.user = None
    g.token = None
    raw = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        raw = header[7:].strip()
    elif cookie.get("token"):
        raw = cookie.get("token")
    if not raw:
        return
    s = db.session()
    token = s.scalar(select(AuthToken).where(AuthToken.token_hash == _digest(raw)))
    if token is None or token.revoked_at is not None or token.expires_at <= utcnow():
        return
    user = s.get(User, token.user_id)
    if user is None or not user.active:
        return
    g.user = user
    g.token = token


# API routes anyone may call; every other /api/v1 route needs a signed-in caller, checked here
# once, before any argument parsing, so an anonymous caller learns nothing from validation errors.
PUBLIC_API = {"/api/v1/auth/token"}


def _api_gate() -> None:
    if request.path.startswith("/api/v1/") and request.path not in PUBLIC_API and g.user is None:
        raise Unauthorized(_("Sign in first."))


def init_app(app: Flask) -> None:
    app.before_request(_load_user)
    app.before_request(_api_gate)


def current_user() -> User:
    user = getattr(g, "user", None)
    if user is None:
        raise Unauthorized(_("Sign in first."))
    return user


def is_system_admin(user: User) -> bool:
    return user.role == "system_admin"


def is_admin_of(user: User, department_id: int | None) -> bool:
    """R-ACC-3: a department administrator acts only within their own department."""
    return is_system_admin(user) or (user.role == "dept_admin" and user.department_id == department_id)


def require_admin() -> User:
    user = current_user()
    if user.role not in ("dept_admin", "system_admin"):
        raise Forbidden(_("Only administrators may do this."))
    return user


def require_any(*, roles: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> User:
    user = current_user()
    if user.role in roles or user.groups & set(groups):
        return user
    raise Forbidden(_("You are not allowed to do this."))
