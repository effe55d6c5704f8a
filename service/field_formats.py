"""Form fields for the platform's own things, as JSON Schema `format`s on string fields (issue 17).

`department`, `user` and `group` hold a code (department code, login name, group code) that
must name an existing department, an active person or a group; `date` (`2026-12-03`),
`date-time` (ISO 8601 with its offset, `2026-12-03T09:30:00+08:00`) and `duration` (ISO 8601,
`PT8H`, as timers and deadlines take them) are held as the engine reads them; `grant`
(`role:dept_admin`, `group:designer`) is only shown, as the role's or group's name. The page renderer
(service/pages/fields.py) turns them into a list of names, a searchable person field and native
pickers; every view shows names and formatted values instead of the codes (`display`).
"""
from __future__ import annotations

import re
from typing import Any

from flask import g, has_request_context
from jsonschema import FormatChecker
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import i18n, localtime
from .models import Department, Group, User

NAMED = ("department", "user", "group")  # codes of the platform's own records
TIMES = ("date", "date-time", "duration")
# Shown only, never entered: a grant (`role:dept_admin`, `group:designer`) as the role's or group's name.
SHOWN = ("grant",)
FORMATS = NAMED + TIMES + SHOWN

# What a duration field accepts: days, hours and minutes (the units deadlines are counted in).
_DURATION = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?)?$")


def checker(s: Session | None) -> FormatChecker:
    """The standard checks (email, date, date-time …) and the platform's own formats; without a
    session (a preview of a form) the codes are not looked up."""
    out = FormatChecker()
    out.checks("duration")(lambda value: not isinstance(value, str) or bool(_DURATION.match(value)))
    out.checks("date-time")(lambda value: not isinstance(value, str) or localtime.parse_moment(value) is not None)
    for fmt in NAMED:
        out.checks(fmt)(_exists(s, fmt))
    return out


def _exists(s: Session | None, fmt: str):
    def check(value: Any) -> bool:
        if s is None or not isinstance(value, str):
            return True
        column, condition = _LOOKUPS[fmt]
        return s.scalar(select(column).where(column == value, *condition).limit(1)) is not None
    return check


# What a stored code must name (looked up afresh: a record may have been added in this request).
_LOOKUPS = {"department": (Department.code, ()), "user": (User.username, (User.active.is_(True),)),
            "group": (Group.code, ())}


def choices(s: Session, fmt: str) -> list[tuple[str, str]]:
    """(code, name) of what a field of this format may hold, ordered by name."""
    return sorted(_names(s, "active_user" if fmt == "user" else fmt).items(), key=lambda item: (item[1], item[0]))


def people(s: Session) -> list[tuple[str, str, str]]:
    """(login name, full name, department name) of every active person, for the person search."""
    departments = _names(s, "department_by_id")
    return [(u, n, departments.get(d, "")) for u, n, d in s.execute(
        select(User.username, User.full_name, User.department_id).where(User.active.is_(True))
        .order_by(User.full_name, User.username))]


def display(fmt: str | None, value: Any, s: Session | None = None) -> str | None:
    """A value of one of these formats as a reader sees it, or None for any other format."""
    if fmt not in FORMATS or not isinstance(value, str) or value == "":
        return None
    if fmt == "date":
        return i18n.day_text(value)
    if fmt == "date-time":
        return i18n.moment_text(value)
    if fmt == "duration":
        return i18n.duration_text(value)
    if fmt == "grant":
        kind, _sep, code = value.partition(":")
        return i18n.role_name(code) if kind == "role" else name_of("group", code, s)
    return name_of(fmt, value, s)


def name_of(fmt: str, code: str | None, s: Session | None = None) -> str:
    """The name behind a department code, login name or group code; the code if none is known."""
    if not code:
        return ""
    if s is None:
        from . import db

        s = db.session()
    return _names(s, fmt).get(code, code)


def _names(s: Session, fmt: str) -> dict:
    """Code → name, read once per request (a page shows many values of the same kind)."""
    cache = g.setdefault("_field_names", {}) if has_request_context() else {}
    key = (fmt, _english())
    if key not in cache:
        cache[key] = dict(s.execute(_QUERIES[fmt]()).all())
    return cache[key]


_QUERIES = {
    "department": lambda: select(Department.code, _in_language(Department)),
    "department_by_id": lambda: select(Department.id, _in_language(Department)),
    "user": lambda: select(User.username, User.full_name),  # shown also once deactivated
    "active_user": lambda: select(User.username, User.full_name).where(User.active.is_(True)),
    "group": lambda: select(Group.code, _in_language(Group)),
}


def _in_language(model):
    """A department's or group's name column in the reader's language (English when it has one)."""
    return func.coalesce(func.nullif(model.name_en, ""), model.name) if _english() else model.name


def department_label(department) -> str:
    """A department record's name as the reader reads it."""
    if department is None:
        return ""
    return (department.name_en or department.name) if _english() else department.name


def _english() -> bool:
    from flask_babel import get_locale

    return has_request_context() and str(get_locale()) == "en"

