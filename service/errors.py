"""Domain errors, raised where the problem is known and turned into one JSON shape by one handler:
`{"code": ..., "message": ..., "details": ...}` with the message in the user's language."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_babel import gettext as _
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


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


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return _body(e.code, e.message, e.details, e.status)

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
        return _body(e.name.lower().replace(" ", "_"), message, details, status)


def _flatten_field_errors(messages: dict, prefix: str = "") -> list[dict]:
    out = []
    for key, value in messages.items():
        if key in ("json", "form", "query", "files", "headers") and not prefix:
            out.extend(_flatten_field_errors(value, ""))
            continue
        field = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.extend(_flatten_field_errors(value, field))
        else:
            out.append({"field": field, "message": "; ".join(map(str, value)) if isinstance(value, list) else str(value)})
    return out
