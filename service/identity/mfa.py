"""The second factor (R-SEC-6): TOTP (RFC 6238) authenticators and one-time recovery codes.

A TOTP code is accepted for the current 30-second step and one step either side (clock drift),
and only if its step is later than the last step accepted for that factor: a code seen once —
even one still inside the window — is refused, so an observed code cannot be replayed. The update
of the last step is conditional in SQL, so two requests racing with one code cannot both win.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import delete, select, update

from engine import clock

from .. import audit
from ..models import User, utcnow
from .models import MfaFactor, RecoveryCode, SecurityKey

ISSUER = "Inkless"
STEP_SECONDS = 30
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _fernet() -> Fernet:
    # A key of its own, derived from the application's secret key, so a leaked database alone does
    # not reveal the authenticators' secrets.
    key = hashlib.sha256(b"inkless-mfa\0" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _secret(factor: MfaFactor) -> str:
    try:
        return _fernet().decrypt(factor.secret.encode()).decode()
    except InvalidToken:  # the secret key changed: the factor cannot be checked any more
        return ""


def factor(s, user: User) -> MfaFactor | None:
    """The user's confirmed authenticator, if any."""
    return s.scalar(select(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.confirmed_at.is_not(None)))


def has_factor(s, user: User) -> bool:
    """An authenticator app or a security key."""
    return factor(s, user) is not None or has_security_key(s, user)


def has_security_key(s, user: User) -> bool:
    return s.scalar(select(SecurityKey.id).where(SecurityKey.user_id == user.id).limit(1)) is not None


def required(user: User) -> bool:
    """The policy (INKLESS_MFA_REQUIRED_ROLES) demands a second factor of this user."""
    roles = current_app.config["INKLESS"].mfa_required_roles
    return user.role in roles or any(f"group:{g}" in roles for g in user.groups)


def must_enrol(s, user: User) -> bool:
    return current_app.config["INKLESS"].mfa_enforced and required(user) and not has_factor(s, user)


def pending_enrolment(s, user: User) -> tuple[MfaFactor, str]:
    """The unconfirmed authenticator being set up (a new secret unless one is under way)."""
    row = s.scalar(select(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.confirmed_at.is_(None)))
    if row is None or not _secret(row):
        if row is not None:
            s.delete(row)
        row = MfaFactor(user_id=user.id, kind="totp",
                        secret=_fernet().encrypt(pyotp.random_base32().encode()).decode())
        s.add(row)
        s.flush()
    return row, _secret(row)


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as an SVG QR code in a data: URI (the page's CSP allows img-src data:)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _step_now() -> int:
    return int(clock.now().timestamp()) // STEP_SECONDS


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def check_totp(s, row: MfaFactor, code: str) -> bool:
    """Accept a code once: its step must be within ±1 of now and later than the last accepted one."""
    code = _normalise(code)
    secret = _secret(row)
    if not secret or len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(secret)
    now = _step_now()
    for step in (now - 1, now, now + 1):
        if step > row.last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            won = s.execute(update(MfaFactor).where(MfaFactor.id == row.id, MfaFactor.last_step < step)
                            .values(last_step=step)).rowcount
            if won:
                row.last_step = step
            return bool(won)
    return False


def _code_hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def new_recovery_codes(s, user: User) -> list[str]:
    """Ten fresh codes, replacing any earlier ones; shown once, stored hashed."""
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        s.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(raw)))
    s.flush()
    return codes


def use_recovery_code(s, user: User, code: str) -> bool:
    if len(_normalise(code)) != 10:
        return False
    used = s.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _code_hash(code), RecoveryCode.used_at.is_(None),
    ).values(used_at=utcnow())).rowcount
    return bool(used)


def recovery_codes_left(s, user: User) -> int:
    return len(s.scalars(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id,
                                                       RecoveryCode.used_at.is_(None))).all())


def verify(s, user: User, code: str) -> str | None:
    """Check a second-factor answer: a TOTP code or a recovery code. Returns which one was used."""
    row = factor(s, user)
    if row is not None and check_totp(s, row, code):
        return "totp"
    if use_recovery_code(s, user, code):
        return "recovery_code"
    return None


def confirm(s, user: User, row: MfaFactor, code: str) -> list[str] | None:
    """Turn the authenticator on with its first valid code; returns the new recovery codes."""
    if not check_totp(s, row, code):
        return None
    s.execute(delete(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.id != row.id))
    row.confirmed_at = utcnow()
    audit.record(s, "mfa_enrolled", "user", user.id, actor_id=user.id, detail={"kind": "totp"})
    return new_recovery_codes(s, user)


def first_recovery_codes(s, user: User) -> list[str] | None:
    """Recovery codes for a user's first factor (None when they already have codes)."""
    if s.scalar(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id).limit(1)) is not None:
        return None
    return new_recovery_codes(s, user)


def disable(s, user: User) -> None:
    """Remove the authenticator app; the recovery codes go too unless a security key remains."""
    s.execute(delete(MfaFactor).where(MfaFactor.user_id == user.id))
    if not has_security_key(s, user):
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(s, "mfa_disabled", "user", user.id, actor_id=user.id, detail={"kind": "totp"})


def remove_all(s, user: User) -> dict:
    """Every second factor of a user — authenticator (set up or half set up), recovery codes,
    security keys — for an administrator's reset; returns what was removed, for the audit record."""
    removed = {
        "totp": s.execute(delete(MfaFactor).where(MfaFactor.user_id == user.id,
                                                  MfaFactor.confirmed_at.is_not(None))).rowcount,
        "recovery_codes": s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id)).rowcount,
        "security_keys": s.execute(delete(SecurityKey).where(SecurityKey.user_id == user.id)).rowcount,
    }
    s.execute(delete(MfaFactor).where(MfaFactor.user_id == user.id))  # an enrolment under way
    return removed
