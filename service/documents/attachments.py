"""Documents attached to task forms (R-DOC-4, R-SEC-4).

The convention, in a form's JSON Schema: an integer with `"format": "document"` holds one document
id; an array of integers with `"format": "documents"` holds several (attachments). The task data
stores only the ids. Whoever completes the task must be able to read every document they attach
(checked here, on the server, for pages and API alike); whoever later reads the request sees a
title only for the documents they may read themselves — for the others the title is withheld,
so an attachment never leaks what the reader's clearance or grants would hide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidForm
from ..models import User
from . import access
from .models import Document, level_name

SINGLE, MANY = "document", "documents"


def kind(node: Any) -> str | None:
    """`document` or `documents` if the schema node is a document field, else None."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "integer" and node.get("format") == SINGLE:
        return SINGLE
    if node.get("type") == "array" and node.get("format") == MANY:
        return MANY
    return None


def ids(value: Any) -> list[int]:
    """The document ids in a field's value (ignoring anything that is not an id)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]


def _fields(schema: dict, data: Any, prefix: str = ""):
    """(path, node, value) of every document field in `data`, repeating sections included."""
    if not isinstance(data, dict):
        return
    for name, node in (schema.get("properties") or {}).items():
        if not isinstance(node, dict) or node.get("readOnly") or name not in data:
            continue
        if kind(node) is not None:
            yield prefix + name, node, data[name]
        elif node.get("type") == "array" and isinstance(node.get("items"), dict) and isinstance(data[name], list):
            for i, row in enumerate(data[name]):
                yield from _fields(node["items"], row, f"{prefix}{name}.{i}.")


def check(s: Session, user: User | None, schema: dict, data: dict) -> None:
    """Refuse a submission that attaches a document its submitter may not read, naming the field
    (an applicant without an account, `user` None, may attach nothing)."""
    errors = []
    for path, node, value in _fields(schema, data):
        for document_id in ids(value):
            document = s.get(Document, document_id)
            if (user is None or document is None or document.state == "deleted"
                    or not access.rights(s, user, document).read):
                errors.append({"field": path, "message": _(
                    "%(field)s: document %(id)s does not exist or you may not read it",
                    field=node.get("title") or path, id=document_id)})
    if errors:
        raise InvalidForm(_("Invalid field: %(fields)s", fields=", ".join(dict.fromkeys(e["field"] for e in errors))),
                          errors)


@dataclass
class Attached:
    """One attached document as a reader sees it: the title only if they may read it."""

    id: int
    title: str | None
    level: str | None = None


def for_reader(s: Session, user: User, document_ids: list[int]) -> list[Attached]:
    out = []
    rows = {d.id: d for d in s.scalars(select(Document).where(Document.id.in_(document_ids or [0])))}
    for document_id in dict.fromkeys(document_ids):
        document = rows.get(document_id)
        if document is not None and document.state != "deleted" and access.rights(s, user, document).read:
            out.append(Attached(document_id, document.title, level_name(document.security_level)))
        else:
            out.append(Attached(document_id, None))
    return out


def choices(s: Session, user: User, keep: list[int], limit: int = 50) -> list[Attached]:
    """What a user may attach: the documents they may read, newest first, plus those already chosen."""
    rows = s.scalars(select(Document).where(access.readable(s, user), Document.state == "active")
                     .order_by(Document.updated_at.desc(), Document.id.desc()).limit(limit)).all()
    listed = [Attached(d.id, d.title, level_name(d.security_level)) for d in rows]
    missing = [i for i in keep if i not in {a.id for a in listed}]
    return for_reader(s, user, missing) + listed if missing else listed
