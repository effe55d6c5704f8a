"""Password hashing (argon2id) and one-time initial passwords."""
from __future__ import annotations

import base64
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION
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


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the hash `stored`. With no hash (no such account) the same argon2
    work is done against a dummy hash of the current cost and the answer is no, so the time a
    sign-in takes does not tell whether the account exists (ASVS 2.2.1)."""
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY: dict[tuple, str] = {}


def _dummy_hash() -> str:
    """An encoded argon2id hash of the hasher's parameters that no password matches: a random salt
    and digest, written out rather than computed, so making it costs nothing."""
    hasher = _hasher()
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.salt_len, hasher.hash_len)
    if key not in _DUMMY:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).rstrip(b"=").decode("ascii")
        _DUMMY[key] = (f"$argon2id$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},"
                       f"p={hasher.parallelism}${b64(secrets.token_bytes(hasher.salt_len))}"
                       f"${b64(secrets.token_bytes(hasher.hash_len))}")
    return _DUMMY[key]


def initial_password(length: int = 14) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in pw) and any(c.islower() for c in pw) and any(c.isupper() for c in pw):
            return pw
