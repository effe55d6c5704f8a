"""The security settings as one reviewable record (R-SEC-1: explicit configuration, and changing
it is audited). A server records the settings it starts with as a `security_policy` audit event
whenever they differ from the last recorded ones, so the audit log shows who ran with what, when."""
from __future__ import annotations

from sqlalchemy import select

from .. import audit
from ..config import Config
from ..models import AuditEvent

ACTION = "security_policy"


def settings(cfg: Config) -> dict:
    return {
        "password_profile": cfg.password_profile,
        "mfa_enforced": cfg.mfa_enforced,
        "mfa_required_roles": list(cfg.mfa_required_roles),
        "lockout_threshold": cfg.lockout_threshold,
        "lockout_window_seconds": cfg.lockout_window_seconds,
        "ratelimit_enabled": cfg.ratelimit_enabled,
        "login_rate_limit": cfg.login_rate_limit,
        "session_idle_seconds": cfg.session_idle_seconds,
        "session_absolute_seconds": cfg.session_absolute_seconds,
        "token_ttl_seconds": cfg.token_ttl_seconds,
    }


def record_if_changed(s, cfg: Config) -> bool:
    """Audit the settings in force if they differ from the last recorded ones; True if recorded."""
    current = settings(cfg)
    last = s.scalar(select(AuditEvent.detail).where(AuditEvent.action == ACTION).order_by(AuditEvent.id.desc()).limit(1))
    if last == current:
        return False
    audit.record(s, ACTION, "configuration", "identity", detail=current)
    return True
