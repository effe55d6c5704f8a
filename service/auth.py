"""Who is calling: bearer tokens for the API, a server-side session record for pages.

A token is 32 random bytes shown once; the database keeps only its SHA-256, so a leaked database
does not leak live sessions. Deactivating a user or revoking a token takes effect on the next
request: every request looks the record up, or uses the one service/identity_cache.py remembers
only while no such change has been committed since.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, has_request_context, request
from flask import session as cookie
from flask_babel import gettext as _
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from . import audit, db, identity_cache, notifications
from .errors import Forbidden, Invalid, NotFound, Unauthorized
from .identity import lockout, mfa, password_policy, security_keys
from .models import AuthToken, User, utcnow
from .passwords import hash_password, initial_password, verify_password

PENDING_SECONDS = 5 * 60  # between the password and the second factor (ASVS 2.8)
PENDING_ATTEMPTS = 5
SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("ascii", "ignore")).hexdigest()


def _config():
    return current_app.config["INKLESS"]


def issue_token(s, user: User, kind: str = "api") -> tuple[str, AuthToken]:
    raw = secrets.token_urlsafe(32)
    cfg = _config()
    ttl = {"session": cfg.session_absolute_seconds, "pending": PENDING_SECONDS}.get(kind, cfg.token_ttl_seconds)
    now = utcnow()
    token = AuthToken(token_hash=_digest(raw), user_id=user.id, kind=kind, created_at=now, last_seen_at=now,
                      expires_at=now + timedelta(seconds=ttl), failed_attempts=0)
    if has_request_context():
        token.user_agent = (request.user_agent.string or "")[:255] or None
        token.client_addr = request.remote_addr
    s.add(token)
    s.flush()
    return raw, token


def _refuse(s, username: str, user: User | None, reason: str, message: str | None = None) -> None:
    """Record the failure (it counts towards the lockout) and answer without saying what was wrong."""
    audit.record(s, "login_failed", "user", username, actor_id=user.id if user else None, detail={"reason": reason})
    s.commit()
    raise Unauthorized(message or _("Wrong username or password."))


def check_password(s, username: str, password: str) -> User:
    """The first step of signing in. The same answer, after the same argon2 work (one
    verification, against a dummy hash when there is no account), for an unknown user, a wrong
    password, a deactivated and a locked account (ASVS 2.2.1 / 3.2): neither the message nor the
    time tells them apart."""
    user = s.scalar(select(User).where(User.username == username))
    matches = verify_password(user.password_hash if user is not None else None, password)
    if user is None:
        _refuse(s, username, None, "password")
    if lockout.locked(s, user):
        _refuse(s, username, user, "locked")
    if not user.active or not matches:
        _refuse(s, username, user, "password")
    rules = password_policy.profile(_config().password_profile)
    if password_policy.expired(rules, user.password_changed_at or user.created_at, utcnow()):
        user.must_change_password = True
    return user


def signed_in(s, user: User, kind: str, factor: str | None) -> tuple[str, AuthToken]:
    raw, token = issue_token(s, user, kind)
    audit.record(s, "login", "user", user.id, actor_id=user.id, detail={"kind": kind, "factor": factor})
    return raw, token


def login(s, username: str, password: str, kind: str = "api", otp: str | None = None) -> tuple[str, AuthToken, User]:
    """Password and, for a user with a second factor, a code in one call (the API)."""
    user = check_password(s, username, password)
    used = None
    if mfa.has_factor(s, user):
        if not otp:
            raise Unauthorized(_("This account has a second factor: send the one-time code in the field otp."),
                               [{"field": "otp", "message": _("Enter the code from your authenticator.")}])
        used = mfa.verify(s, user, otp)
        if used is None:
            _refuse(s, username, user, "otp", _("The one-time code (otp) is wrong or was already used."))
    elif mfa.must_enrol(s, user):
        raise Unauthorized(_("This account must set up a second factor in the workspace before it can use the API."),
                           [{"field": "otp", "message": _("Set up an authenticator first.")}])
    raw, token = signed_in(s, user, kind, used)
    return raw, token, user


def begin_second_step(s, user: User) -> str:
    """The password was right and a code is due: a short-lived marker that signs nobody in."""
    raw, _token = issue_token(s, user, "pending")
    return raw


def pending_user(s, raw: str | None) -> tuple[AuthToken, User] | None:
    if not raw:
        return None
    token = s.scalar(select(AuthToken).where(AuthToken.token_hash == _digest(raw), AuthToken.kind == "pending"))
    if token is None or token.revoked_at is not None or token.expires_at <= utcnow():
        return None
    user = s.get(User, token.user_id)
    if user is None or not user.active:
        return None
    return token, user


def finish_second_step(s, token: AuthToken, user: User, code: str | None = None,
                       credential: dict | None = None) -> tuple[str, AuthToken] | None:
    """Check the code (or security key answer) of a pending sign-in; None when refused (the
    marker ends after 5 wrong answers)."""
    used = None
    if not lockout.locked(s, user):
        if credential is not None:
            used = "webauthn" if security_keys.authenticate(s, user, token, credential) else None
        else:
            used = mfa.verify(s, user, code or "")
    if used is None:
        token.failed_attempts += 1
        if token.failed_attempts >= PENDING_ATTEMPTS:
            token.revoked_at = utcnow()
        audit.record(s, "login_failed", "user", user.username, actor_id=user.id, detail={"reason": "second_factor"})
        return None
    token.revoked_at = utcnow()
    return signed_in(s, user, "session", used)


def logout(s, token: AuthToken) -> None:
    token.revoked_at = utcnow()
    audit.record(s, "logout", "user", token.user_id, actor_id=token.user_id, detail={"kind": token.kind})


def _end_tokens(s, user: User, keep: AuthToken | None = None) -> int:
    others = update(AuthToken).where(AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None))
    if keep is not None:
        others = others.where(AuthToken.id != keep.id)
    return s.execute(others.values(revoked_at=utcnow())).rowcount


def password_rules() -> password_policy.Profile:
    return password_policy.profile(_config().password_profile)


def change_password(s, user: User, old: str, new: str, keep: AuthToken | None = None) -> None:
    """Set a new password (the initial one must be changed at first sign-in, R-ACC-2); every other
    session and token of the user ends."""
    errors = []
    if not verify_password(user.password_hash, old):
        errors.append({"field": "old_password", "message": _("The current password is wrong.")})
    broken = password_policy.problems(password_rules(), new, user.username)
    if broken:
        errors.append({"field": "new_password", "message": " ".join(broken)})
    elif new == old:
        errors.append({"field": "new_password", "message": _("The new password must differ from the current one.")})
    if errors:
        raise Invalid(_("The password was not changed."), errors)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.password_changed_at = utcnow()
    _end_tokens(s, user, keep)
    audit.record(s, "password_changed", "user", user.id, actor_id=user.id)


def may_administer(admin: User, user: User) -> bool:
    """Account administration of `user`: the system administrator, or the department
    administrator of the user's own department for its ordinary users — never of a fellow or
    higher administrator, so a reset cannot climb (R-ACC-3, R-SEC-7)."""
    if admin.id == user.id:
        return False
    return is_system_admin(admin) or (is_admin_of(admin, user.department_id) and user.role == "user")


def _administered(s, admin: User, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    if not may_administer(admin, user):
        raise Forbidden(_("Only the system administrator or the user's department administrator may do this."))
    return user


def reset_password(s, admin: User, user_id: int) -> tuple[User, str]:
    """A temporary password, shown once to the administrator; the user must change it at next sign-in,
    and every session and token of theirs ends now."""
    user = _administered(s, admin, user_id)
    temporary = initial_password(16)
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    user.password_changed_at = utcnow()
    _end_tokens(s, user)
    audit.record(s, "password_reset", "user", user.id, actor_id=admin.id)
    return user, temporary


MAX_REASON = 2000


def reset_second_factor(s, admin: User, user_id: int, reason: str) -> tuple[User, int]:
    """For someone who lost both their authenticator and their recovery codes: remove every second
    factor of theirs and end every session and token, so their next sign-in is by password alone
    (and goes to enrolment where the policy obliges them). Same rule as a password reset; the
    reason is required because this weakens an account (R-SEC-6, R-SEC-10)."""
    user = _administered(s, admin, user_id)
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(_("Invalid field: %(fields)s", fields="reason"),
                      [{"field": "reason", "message": _("required (at most 2000 characters)")}])
    removed = mfa.remove_all(s, user)
    ended = _end_tokens(s, user)
    audit.record(s, "mfa_reset", "user", user.id, actor_id=admin.id,
                 detail={"reason": reason, "removed": removed, "sessions_ended": ended})
    notifications.notify_user(s, user, "mfa_reset", f"{admin.full_name} ({admin.username})", body=reason)
    return user, ended


def end_sessions(s, admin: User, user_id: int) -> int:
    """An administrator ends every session and API token of a user."""
    user = _administered(s, admin, user_id)
    ended = _end_tokens(s, user)
    audit.record(s, "sessions_revoked", "user", user.id, actor_id=admin.id, detail={"count": ended})
    return ended


def my_tokens(s, user: User) -> list[AuthToken]:
    now = utcnow()
    return list(s.scalars(select(AuthToken).where(
        AuthToken.user_id == user.id, AuthToken.kind.in_(("session", "api")), AuthToken.revoked_at.is_(None),
        AuthToken.expires_at > now).order_by(AuthToken.created_at.desc())))


def revoke_mine(s, user: User, token_id: int) -> None:
    token = s.get(AuthToken, token_id)
    if token is None or token.user_id != user.id or token.kind == "pending" or token.revoked_at is not None:
        raise NotFound(_("No such session or token."))
    token.revoked_at = utcnow()
    audit.record(s, "token_revoked", "user", user.id, actor_id=user.id, detail={"kind": token.kind})


def _session_alive(s, token: AuthToken) -> bool:
    """Page sessions: idle timeout and absolute timeout (ASVS 3.3.2); the last request time is
    written at most once a minute so a busy page does not write on every request."""
    cfg = _config()
    now = utcnow()
    seen = token.last_seen_at or token.created_at
    if (now - seen > timedelta(seconds=cfg.session_idle_seconds)
            or now - token.created_at > timedelta(seconds=cfg.session_absolute_seconds)):
        token.revoked_at = now
        audit.record(s, "session_expired", "user", token.user_id, actor_id=token.user_id)
        s.commit()
        return False
    if now - seen >= SEEN_EVERY:
        token.last_seen_at = now
        s.commit()
    return True


# Built once: building the statement on every request costs about as much as running it.
_CALLER = (select(AuthToken, User).join(User, User.id == AuthToken.user_id)
           .where(AuthToken.token_hash == bindparam("token_hash")).options(joinedload(User.group_links)))


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
    digest = _digest(raw)
    callers = current_app.extensions["inkless.callers"]
    found = callers.recall(s, digest, utcnow())
    if found is None:
        generation = callers.before_read()
        # One round trip for the token, its user and the user's groups. Read without a lock (and
        # ended), so a request takes SQLite's write lock only when its own work begins — a unit
        # that runs designer code ends reads before the step (service/optimistic.py).
        with db.reading(s):
            found = s.execute(_CALLER, {"token_hash": digest}).unique().first()
        if found is None:
            return
        callers.remember(digest, generation, *found)
    token, user = found
    if token.kind == "pending" or token.revoked_at is not None or token.expires_at <= utcnow():
        return
    if not user.active:
        return
    if token.kind == "session" and not _session_alive(s, token):
        return
    g.user = user
    g.token = token


# API routes anyone may call; every other /api/v1 route needs a signed-in caller, checked here
# once, before any argument parsing, so an anonymous caller learns nothing from validation errors.
PUBLIC_API = {"/api/v1/auth/token"}


def _api_gate() -> None:
    if not request.path.startswith("/api/v1/") or request.path in PUBLIC_API:
        return
    if g.user is None:
        raise Unauthorized(_("Sign in first."))
    # A page session of someone who must still set up a second factor reaches nothing else.
    if g.token.kind == "session" and mfa.must_enrol(db.session(), g.user):
        raise Forbidden(_("Set up a second factor first."))


def init_app(app: Flask) -> None:
    engine, factory = app.extensions["inkless.engine"], app.extensions["inkless.db"]
    generation = identity_cache.generation_for(engine)
    identity_cache.watch(engine, factory, generation)
    app.extensions["inkless.callers"] = identity_cache.Callers(generation)
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
