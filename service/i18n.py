"""Languages: Simplified Chinese by default, English on request (`?lang=en`, a `lang` cookie or
the user's profile). Source strings are English; `translations/zh` holds the Chinese."""
from __future__ import annotations

from datetime import date, datetime

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _

from . import localtime

SUPPORTED = ("zh", "en")


def select_locale() -> str:
    """`?lang=` for this page, then the profile's setting (/settings), then the `lang` cookie that an
    earlier `?lang=` left, then the browser's Accept-Language, then Chinese."""
    if request.args.get("lang") in SUPPORTED:
        return request.args["lang"]
    user = getattr(g, "user", None)
    if user is not None and user.locale in SUPPORTED:
        return user.locale
    if request.cookies.get("lang") in SUPPORTED:
        return request.cookies["lang"]
    header = request.headers.get("Accept-Language", "")
    if header.lower().startswith("en"):
        return "en"
    return "zh"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = "translations"
    Babel(app, locale_selector=select_locale)


def translate_problem(template: str | None, params: dict, fallback: str) -> str:
    """Say an engine diagram problem in the user's language."""
    if not template:
        return fallback
    try:
        return _(template, **params) if params else _(template)
    except (KeyError, ValueError, TypeError):
        return fallback


ENGLISH_SUFFIX = "_en"


def designer_texts(node):
    """A designer's form or UI schema in the user's language, in place: beside each Chinese text
    (`title`, `description`, `enumNames`, `ui:help`…) a designer may write its English as the same
    key with `_en`; under English that text replaces the Chinese one, and the `_en` keys never
    reach the renderer. A text without English stays as written."""
    english = has_request_context() and str(get_locale()) == "en"

    def walk(value):
        if isinstance(value, dict):
            for key in [k for k in value if isinstance(k, str) and k.endswith(ENGLISH_SUFFIX)]:
                text = value.pop(key)
                base = key[:-len(ENGLISH_SUFFIX)]
                if english and base in value and text not in (None, "", []):
                    value[base] = text
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return node


def _zh() -> bool:
    return str(get_locale()) == "zh"


def moment_text(value) -> str:
    """A moment as people read it, in platform time: `2026年12月3日 09:30` (`3 Dec 2026 09:30`).
    Takes a datetime or the ISO text a `date-time` field holds; other text is shown as it is."""
    moment = localtime.parse_moment(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return "" if value is None else str(value)
    local = moment.astimezone(localtime.PLATFORM_TZ)
    return f"{day_text(local.date())} {local:%H:%M}"


def day_text(value) -> str:
    """A calendar day: `2026年12月3日` (`3 Dec 2026`); ISO text (`2026-12-03`) is read first."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, date):
        return "" if value is None else str(value)
    if _zh():
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {value:%b} {value.year}"


def role_name(code: str) -> str:
    """A role as people read it (the roles are the platform's, so their names are its own texts)."""
    names = {"user": _("Ordinary user"), "dept_admin": _("Department administrator"),
             "system_admin": _("System administrator")}
    return names.get(code, code)


def size_text(size: int | None) -> str:
    """A file size in 字节 / KB / MB (bytes / KB / MB)."""
    if size is None:
        return ""
    if size < 1024:
        return _("%(n)s bytes", n=size)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}".replace(".0 ", " ")
    return ""


# Units of an ISO 8601 duration as SpiffWorkflow parses it (engine.horizon.parse_duration).
_DURATION_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


def duration_text(value) -> str:
    """An ISO 8601 duration (`PT8H`, `P3D`) in words: `8 小时`, `3 天`; other text as it is."""
    from engine.horizon import parse_duration  # engine imports nothing of the service

    try:
        parts = parse_duration(value) if isinstance(value, str) else None
    except Exception:  # noqa: BLE001 - not a duration (or past the horizon): shown as stored
        parts = None
    if not parts:
        return "" if value is None else str(value)
    words = {"years": _("%(n)s years"), "months": _("%(n)s months"), "weeks": _("%(n)s weeks"),
             "days": _("%(n)s days"), "hours": _("%(n)s hours"), "minutes": _("%(n)s minutes"),
             "seconds": _("%(n)s seconds")}
    said = [words[u] % {"n": _number(parts[u])} for u in _DURATION_UNITS if parts.get(u)]
    return ("" if _zh() else " ").join(said) or words["minutes"] % {"n": 0}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
