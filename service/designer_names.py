"""Designers' words in the user's language: a diagram's process, step and lane names and its
process description, in the English its designer wrote beside them (engine/texts.py reads the
`name_en` / `description_en` properties). Forms carry theirs as `_en` keys (i18n.designer_texts);
instructions as `instructions_en`, rendered by the engine beside the Chinese ones.

Only English asks anything of the database: the dictionary of every deployed diagram is built
once per deployment (deployments are immutable, so the newest deployment id says whether it is
still whole) and one query a request checks that.
"""
from __future__ import annotations

import threading

from flask import current_app, g, has_request_context
from flask_babel import get_locale
from sqlalchemy import func, select

from engine.errors import InvalidDiagram
from engine.loader import parse_xml
from engine.texts import NAME_EN, english_texts

from . import db
from .models import Deployment, DeploymentFile

_LOCK = threading.Lock()


def english() -> bool:
    return has_request_context() and str(get_locale()) == "en"


def _dictionary() -> dict[str, str]:
    if "designer_english" in g:
        return g.designer_english
    s = db.session()
    newest = s.scalar(select(func.max(Deployment.id))) or 0
    cached = current_app.extensions.get("inkless.designer_english")
    if cached is None or cached[0] != newest:
        with _LOCK:
            cached = current_app.extensions.get("inkless.designer_english")
            if cached is None or cached[0] != newest:
                cached = (newest, _build(s))
                current_app.extensions["inkless.designer_english"] = cached
    g.designer_english = cached[1]
    return cached[1]


def _build(s) -> dict[str, str]:
    out: dict[str, str] = {}
    rows = s.execute(select(DeploymentFile.name, DeploymentFile.content).where(
        DeploymentFile.kind == "bpmn", DeploymentFile.content.contains(NAME_EN)).order_by(DeploymentFile.id.desc()))
    for name, content in rows:  # newest first: a later deployment's English wins
        try:
            found = english_texts(parse_xml(content, name))
        except InvalidDiagram:
            continue
        for text, translation in found.items():
            out.setdefault(text, translation)
    return out


def designer(text: str | None) -> str | None:
    """`text` as the user reads it: the designer's English under English, else as written."""
    if not text or not english():
        return text
    return _dictionary().get(text.strip(), text)


def instructions(task) -> str:
    """An open task's instructions as the user reads them (the English rendered beside them)."""
    if english() and getattr(task, "instructions_en", None):
        return task.instructions_en
    return task.instructions or ""


def init_app(app) -> None:
    app.add_template_filter(designer, "designer")
    app.add_template_filter(instructions, "instructions")
