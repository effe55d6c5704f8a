"""Task forms: JSON Schema files deployed with a process, validated on the server.

Approval tasks (property `approval` = true) get the shared decision block — R-WF-2: a decision
of approve / return / reject and an opinion that is mandatory unless approving.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache

from flask_babel import gettext as _
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from sqlalchemy.orm import Session

from . import field_formats
from .errors import InvalidForm
from .i18n import designer_texts

DECISIONS = ("approve", "return", "reject")


def decision_block() -> dict:
    return {
        "decision": {
            "type": "string",
            "title": _("Decision"),
            "oneOf": [
                {"const": "approve", "title": _("Approve")},
                {"const": "return", "title": _("Return for amendment")},
                {"const": "reject", "title": _("Reject")},
            ],
        },
        "opinion": {"type": "string", "title": _("Opinion"), "maxLength": 4000},
    }


def is_approval(properties: dict) -> bool:
    """A user task marked `approval` (its form gets the decision block)."""
    return str(properties.get("approval", "")).lower() == "true"


def task_schema(form_text: str | None, approval: bool) -> dict:
    schema = designer_texts(copy.deepcopy(_parse(form_text))) if form_text else {"type": "object", "properties": {}}
    if approval:
        schema.setdefault("properties", {}).update(decision_block())
        required = [r for r in schema.get("required", []) if r not in ("decision", "opinion")]
        schema["required"] = required + ["decision"]
    return schema


@lru_cache(maxsize=256)
def _parse(text: str) -> dict:
    return json.loads(text)


def validate(schema: dict, data: dict, approval: bool, s: Session | None = None) -> None:
    """Raise InvalidForm naming every failing field, in the user's language. With a session, a
    department, person or group field must name one that exists (service/field_formats.py)."""
    if not isinstance(data, dict):
        raise InvalidForm(_("The form data must be an object."), [{"field": "data", "message": _("must be an object")}])
    errors = []
    for error in Draft202012Validator(schema, format_checker=field_formats.checker(s)).iter_errors(data):
        errors.append({"field": _field(error), "message": _message(error, schema)})
    if approval and data.get("decision") in ("return", "reject") and not str(data.get("opinion") or "").strip():
        errors.append({"field": "opinion", "message": _("An opinion is required when returning or rejecting.")})
    if errors:
        errors.sort(key=lambda e: e["field"])
        raise InvalidForm(_("Invalid field: %(fields)s", fields=", ".join(dict.fromkeys(e["field"] for e in errors))),
                          errors)


def _field(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path.append(missing)
    return ".".join(path) or "data"


def _title(schema: dict, field: str) -> str:
    node = schema
    for part in field.split("."):
        props = node.get("properties", {}) if isinstance(node, dict) else {}
        if part in props:
            node = props[part]
        elif isinstance(node, dict) and "items" in node:
            node = node["items"]
        else:
            return field
    return node.get("title", field) if isinstance(node, dict) else field


def _message(error: ValidationError, schema: dict) -> str:
    field = _field(error)
    label = _title(schema, field)
    v = error.validator
    if v == "required":
        return _("%(field)s is required", field=label)
    if v == "type":
        return _("%(field)s has the wrong type (expected %(type)s)", field=label, type=error.validator_value)
    if v in ("enum", "oneOf", "const", "anyOf"):
        return _("%(field)s is not one of the allowed values", field=label)
    if v == "pattern":
        return _("%(field)s has an invalid format", field=label)
    if v == "format":
        return _format_message(label, error.validator_value)
    if v == "minLength":
        return _("%(field)s is too short (at least %(n)s characters)", field=label, n=error.validator_value)
    if v == "maxLength":
        return _("%(field)s is too long (at most %(n)s characters)", field=label, n=error.validator_value)
    if v == "minimum":
        return _("%(field)s must be at least %(n)s", field=label, n=error.validator_value)
    if v == "maximum":
        return _("%(field)s must be at most %(n)s", field=label, n=error.validator_value)
    if v in ("minItems", "maxItems", "uniqueItems"):
        return _("%(field)s has an invalid number of items", field=label)
    return _("%(field)s is invalid", field=label)


def _format_message(label: str, fmt: str) -> str:
    messages = {
        "department": _("%(field)s: choose a department from the list", field=label),
        "user": _("%(field)s: choose an active person from the list", field=label),
        "group": _("%(field)s: choose a group from the list", field=label),
        "date": _("%(field)s is not a valid date", field=label),
        "date-time": _("%(field)s is not a valid date and time", field=label),
        "duration": _("%(field)s is not a valid duration", field=label),
    }
    return messages.get(fmt) or _("%(field)s is not a valid %(format)s", field=label, format=fmt)
