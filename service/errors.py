"""Domain errors, raised where the problem is known and turned into one JSON shape by one handler:
`{"code": ..., "message": ..., "details": ...}` with the message in the user's language."""
from __future__ import annotations

import re
from typing import Any

from flask import Flask, jsonify, request
from flask_babel import gettext as _
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from engine.errors import N_, DataProblem, DataRejected


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class BadJson(ApiError):
    """400: the body is not JSON at all (malformed, not UTF-8, NaN)."""

    code = "invalid_json"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Invalid(ApiError):
    """422: the request was understood but its content is wrong; details name the fields."""

    status = 422
    code = "invalid"


class InvalidForm(Invalid):
    code = "invalid_form"


class InvalidDiagramError(Invalid):
    code = "invalid_diagram"


def _body(code: str, message: str, details: Any = None, status: int = 400):
    response = jsonify({"code": code, "message": message, "details": details})
    response.status_code = status
    return response


_HTTP_MESSAGES = {
    400: lambda: _("The request could not be understood."),
    401: lambda: _("Sign in first."),
    403: lambda: _("You are not allowed to do this."),
    404: lambda: _("Not found."),
    405: lambda: _("Method not allowed."),
    409: lambda: _("Conflict with the current state."),
    413: lambda: _("The upload is too large."),
    415: lambda: _("Unsupported media type."),
    422: lambda: _("The data is invalid."),
    429: lambda: _("Too many requests; try again later."),
}


def problem_details(found: DataProblem) -> list[dict]:
    """An engine/bounds.py problem as the API's field errors, in the user's language."""
    message = _(found.template, **found.params) if found.params else _(found.template)
    return [{"field": found.field, "message": message}]


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return _body(e.code, e.message, e.details, e.status)

    @app.errorhandler(DataRejected)
    def _data_rejected(e: DataRejected):
        # Task data the engine will not store (engine/bounds.py, engine/codec.py); nothing was written.
        found = e.problem
        status, code = (413, "too_large") if found.kind == "size" else (422, "invalid")
        return _body(code, _("Invalid field: %(fields)s", fields=found.field), problem_details(found), status)

    @app.errorhandler(StaleDataError)
    def _stale(e):
        return _body("conflict", _("Someone else changed this instance at the same time; reload and try again."),
                     None, 409)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        status = e.code or 500
        details = None
        # webargs/flask-smorest put field errors on the exception
        data = getattr(e, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages:
            details = _flatten_field_errors(messages)
        message = _HTTP_MESSAGES.get(status, lambda: e.description)()
        if details:
            message = _("Invalid field: %(fields)s", fields=", ".join(d["field"] for d in details))
        elif status == 413:
            details = _size_limit()
        return _body(e.name.lower().replace(" ", "_"), message, details, status)


def _size_limit() -> list[dict] | None:
    limit = request.max_content_length
    if not limit:
        return None
    return [{"field": "body", "message": _("at most %(limit)s MB", limit=f"{limit / (1024 * 1024):g}")}]


# webargs' request locations: their errors are about the body or the query as a whole.
_LOCATIONS = ("json", "form", "query", "querystring", "files", "headers", "cookies", "view_args", "path")


def _flatten_field_errors(messages, prefix: str = "") -> list[dict]:
    """marshmallow's nested error messages as [{"field": "a.b.0.c", "message": ...}]."""
    if not isinstance(messages, dict):
        return [{"field": prefix or "body", "message": _field_message(messages)}]
    out = []
    for key, value in messages.items():
        if key in _LOCATIONS and not prefix:
            out.extend(_flatten_field_errors(value, "body" if key in ("json", "form") and not isinstance(value, dict)
                                             else ""))
            continue
        name = "body" if key == "_schema" and not prefix else str(key)
        field = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            out.extend(_flatten_field_errors(value, field))
        else:
            out.append({"field": field, "message": _field_message(value)})
    return out


def _field_message(value) -> str:
    items = value if isinstance(value, list) else [value]
    return "; ".join(_translated(str(item)) for item in items)


# marshmallow's own messages (English, made when the schema is built), said in the user's language.
_MARSHMALLOW = {
    "Missing data for required field.": N_("required"),
    "Field may not be null.": N_("may not be empty (null)"),
    "Unknown field.": N_("unknown field"),
    "Invalid input type.": N_("must be a JSON object"),
    "Invalid value.": N_("invalid value"),
    "Not a valid string.": N_("must be text"),
    "Not a valid integer.": N_("must be a whole number"),
    "Not a valid number.": N_("must be a number"),
    "Number too large.": N_("the number is too large"),
    "Not a valid boolean.": N_("must be true or false"),
    "Not a valid mapping type.": N_("must be an object"),
    "Not a valid list.": N_("must be a list"),
    "Not a valid date.": N_("must be a date (YYYY-MM-DD)"),
    "Not a valid datetime.": N_("must be a date and time (ISO 8601)"),
    "Not a valid aware datetime.": N_("must be a date and time with its time zone (ISO 8601)"),
    "String does not match expected pattern.": N_("does not have the expected form"),
    "Invalid JSON body.": N_("The request body is not valid JSON."),
}
_MARSHMALLOW_PATTERNS = [
    (re.compile(r"Longer than maximum length (?P<n>\d+)\.$"), N_("at most %(n)s characters")),
    (re.compile(r"Shorter than minimum length (?P<n>\d+)\.$"), N_("at least %(n)s characters")),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\.$"),
     N_("from %(min)s to %(max)s characters or items")),
    (re.compile(r"Must be one of: (?P<choices>.*)\.$"), N_("must be one of: %(choices)s")),
]


def _translated(message: str) -> str:
    if message in _MARSHMALLOW:
        return _(_MARSHMALLOW[message])
    for pattern, template in _MARSHMALLOW_PATTERNS:
        found = pattern.match(message)
        if found:
            return _(template, **found.groupdict())
    return message
