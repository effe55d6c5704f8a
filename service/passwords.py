"""Password hashing (argon2id) and one-time initial passwords."""
from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

_hashers: dict[tuple[int, int], PasswordHasher] = {}


def _hasher() -> PasswordHasher:
    cfg = current_app.config["INKLESS"]
    key = (cfg.argon2_time_cost, cfg.argon2_memory_cost)
    if key not in _hashers:
        _hashers[key] = PasswordHasher(time_cost=key[0], memory_cost=key[1], parallelism=1)
    return _hashers[key]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY: dict[tuple[int, int], str] = {}


def burn_time(password: str) -> None:
    """Spend what a real check would cost, so an unknown user answers as slowly as a wrong password."""
    cfg = current_app.config["INKLESS"]
    key = (cfg.argon2_time_cost, cfg.argon2_memory_cost)
    if key not in _DUMMY:
        _DUMMY[key] = hash_password(secrets.token_urlsafe(12))
    verify_password(_DUMMY[key], password)


def initial_password(length: int = 14) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in pw) and any(c.islower() for c in pw) and any(c.isupper() for c in pw):
            return pw
