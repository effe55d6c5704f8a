"""WebAuthn security keys, the alternative second factor (R-SEC-6 "security keys where configured").

The browser side is service/static/webauthn.js. Each ceremony's challenge is kept on the caller's
own auth_tokens row (the session when registering, the pending sign-in when signing in) and
cleared when answered, so a challenge answers once. Sign counters that stop increasing (a cloned
authenticator) are refused by py_webauthn's check.
"""
from __future__ import annotations

import json
import secrets

from flask import current_app, request
from flask_babel import gettext as _
from sqlalchemy import delete, select
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidRegistrationResponse, WebAuthnException
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

from .. import audit
from ..errors import Invalid
from ..models import AuthToken, User, utcnow
from . import mfa
from .models import RecoveryCode, SecurityKey


def relying_party() -> tuple[str, str]:
    """(RP ID, origin): configured, or this request's host — behind a proxy set both explicitly."""
    cfg = current_app.config["INKLESS"]
    origin = cfg.webauthn_origin or f"{request.scheme}://{request.host}"
    return cfg.webauthn_rp_id or request.host.split(":")[0], origin


def keys(s, user: User) -> list[SecurityKey]:
    return list(s.scalars(select(SecurityKey).where(SecurityKey.user_id == user.id).order_by(SecurityKey.id)))


def _challenge(token: AuthToken) -> bytes:
    raw = secrets.token_bytes(32)
    token.challenge = bytes_to_base64url(raw)
    return raw


def _take_challenge(token: AuthToken) -> bytes | None:
    value, token.challenge = token.challenge, None
    return base64url_to_bytes(value) if value else None


def registration_options(s, user: User, token: AuthToken) -> str:
    rp_id, _origin = relying_party()
    options = generate_registration_options(
        rp_id=rp_id, rp_name="Inkless", user_name=user.username, user_display_name=user.full_name,
        user_id=str(user.id).encode(), challenge=_challenge(token),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(k.credential_id)) for k in keys(s, user)])
    return options_to_json(options)


def register(s, user: User, token: AuthToken, credential: dict, name: str) -> SecurityKey:
    challenge = _take_challenge(token)
    rp_id, origin = relying_party()
    try:
        if challenge is None:
            raise InvalidRegistrationResponse("no challenge")
        verified = verify_registration_response(credential=json.dumps(credential), expected_challenge=challenge,
                                                expected_rp_id=rp_id, expected_origin=origin)
    except (WebAuthnException, ValueError, KeyError, TypeError):  # any malformed or wrong answer
        raise Invalid(_("The security key could not be registered. Try again."),
                      [{"field": "credential", "message": _("The security key's answer was not accepted.")}]) from None
    key = SecurityKey(user_id=user.id, credential_id=bytes_to_base64url(verified.credential_id),
                      public_key=bytes_to_base64url(verified.credential_public_key),
                      sign_count=verified.sign_count, name=(name.strip() or _("Security key"))[:100])
    s.add(key)
    s.flush()
    audit.record(s, "mfa_enrolled", "user", user.id, actor_id=user.id, detail={"kind": "webauthn", "key": key.id})
    return key


def authentication_options(s, user: User, token: AuthToken) -> str:
    rp_id, _origin = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, challenge=_challenge(token),
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(k.credential_id)) for k in keys(s, user)])
    return options_to_json(options)


def authenticate(s, user: User, token: AuthToken, credential: dict) -> bool:
    challenge = _take_challenge(token)
    key = s.scalar(select(SecurityKey).where(SecurityKey.user_id == user.id,
                                             SecurityKey.credential_id == str(credential.get("id", ""))))
    if challenge is None or key is None:
        return False
    rp_id, origin = relying_party()
    try:
        verified = verify_authentication_response(
            credential=json.dumps(credential), expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=base64url_to_bytes(key.public_key),
            credential_current_sign_count=key.sign_count)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return False
    key.sign_count = verified.new_sign_count
    key.last_used_at = utcnow()
    return True


def remove(s, user: User, key_id: int) -> bool:
    key = s.get(SecurityKey, key_id)
    if key is None or key.user_id != user.id:
        return False
    s.delete(key)
    s.flush()
    if not mfa.has_factor(s, user):
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(s, "mfa_disabled", "user", user.id, actor_id=user.id, detail={"kind": "webauthn", "key": key_id})
    return True
