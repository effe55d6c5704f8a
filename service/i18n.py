"""Languages: Simplified Chinese by default, English on request (`?lang=en`, a `lang` cookie or
the user's profile). Source strings are English; `translations/zh` holds the Chinese."""
from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel
from flask_babel import gettext as _

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
