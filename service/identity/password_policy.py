"""What a new password must satisfy, under one of two profiles chosen by configuration (R-SEC-1).

- `asvs` (default), OWASP ASVS 4.0 V2.1: at least 12 characters, no composition rules, no periodic
  change; refuse common / breached passwords (2.1.7) and the username inside the password.
- `mlps3`, China's MLPS 2.0 level 3 (GB/T 22239-2019 8.1.4.1): at least 8 characters of at least
  three of the four classes (upper, lower, digit, other), changed every 90 days; the same common-list
  and username checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_

COMMON_LIST = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"
MAX_LENGTH = 128


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    min_length: int
    min_classes: int  # 0: no composition rule
    max_age_days: int | None  # None: no periodic change


PROFILES = {
    "asvs": Profile("asvs", N_("OWASP ASVS 4 (level 2)"), 12, 0, None),
    "mlps3": Profile("mlps3", N_("MLPS 2.0 level 3"), 8, 3, 90),
}


def profile(name: str) -> Profile:
    return PROFILES[name]


@cache
def _common() -> frozenset[str]:
    lines = COMMON_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _classes(password: str) -> int:
    return sum((any(c.isupper() for c in password), any(c.islower() for c in password),
                any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))


def problems(rules: Profile, password: str, username: str) -> list[str]:
    """Every rule the password breaks, as messages for the user (empty: acceptable)."""
    out = []
    if len(password) < rules.min_length:
        out.append(_("The password needs at least %(n)s characters.", n=rules.min_length))
    if len(password) > MAX_LENGTH:
        out.append(_("The password may have at most %(n)s characters.", n=MAX_LENGTH))
    if rules.min_classes and _classes(password) < rules.min_classes:
        out.append(_("The password needs characters of at least three kinds: capital letters, small "
                     "letters, digits, other characters."))
    if password.lower() in _common():
        out.append(_("This password is on the list of common, easily guessed passwords."))
    if len(username) >= 3 and username.lower() in password.lower():
        out.append(_("The password must not contain the username."))
    return out


def expired(rules: Profile, changed_at: datetime | None, now: datetime) -> bool:
    """The profile's periodic change is due (a password of unknown age counts as due)."""
    if rules.max_age_days is None:
        return False
    return changed_at is None or now - changed_at >= timedelta(days=rules.max_age_days)


def describe(rules: Profile) -> str:
    """One line for the change-password form."""
    if rules.min_classes:
        return _("At least %(n)s characters, of at least three kinds (capital letters, small letters, digits, "
                 "other characters); not a common password and not containing your username.", n=rules.min_length)
    return _("At least %(n)s characters; not a common password and not containing your username.",
             n=rules.min_length)
