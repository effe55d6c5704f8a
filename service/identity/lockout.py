"""Account lockout (ASVS 2.2.1, MLPS 2.0 level 3 "login failure handling").

Failures are the `login_failed` audit events the sign-in already writes (one source of truth, and
the security indicators count the same events). An account is locked while it has at least
`lockout_threshold` failures within the last `lockout_window_seconds` since its last successful
sign-in; the lock lifts by itself when enough of them age out of the window. Attempts made while
locked are failures too, so an attacker who keeps trying keeps the account locked, while the
per-address rate limit bounds how fast anyone can try.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from ..models import AuditEvent, User, utcnow


def locked(s, user: User) -> bool:
    cfg = current_app.config["INKLESS"]
    since = utcnow() - timedelta(seconds=cfg.lockout_window_seconds)
    last_login = s.scalar(select(func.max(AuditEvent.at)).where(
        AuditEvent.action == "login", AuditEvent.actor_id == user.id))
    if last_login is not None and last_login > since:
        since = last_login
    failures = s.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "login_failed", AuditEvent.actor_id == user.id, AuditEvent.at >= since))
    return failures >= cfg.lockout_threshold
