"""What one request may carry, so that no input reaches the database or the engine as a 500.

- Integers: ids and counts are INTEGER columns, 32-bit on PostgreSQL (SQLite would hold 64); a
  larger number in a path is no resource (404, through the app-wide `int` converter) and in a
  query or a body a 422 naming the field (`Integer`), instead of an OverflowError or
  NumericValueOutOfRange in the driver.
- JSON: bodies are parsed strictly (service/api/blueprint.py) and task data (`JsonObject`) is
  bounded in depth and values (engine/bounds.py) and in size (MAX_DATA_BYTES, 413).
"""
from __future__ import annotations

import json

from flask_babel import gettext as _
from marshmallow import ValidationError, fields, validate
from werkzeug.routing import IntegerConverter
from werkzeug.routing import ValidationError as NoRoute

from .errors import ApiError

# The narrower of the two databases: PostgreSQL's INTEGER.
MAX_INT = 2**31 - 1
MIN_INT = -(2**31)
# Task data, message payloads and scenario data in one request, as JSON (a form with repeating
# sections is a few kilobytes).
MAX_DATA_BYTES = 1024 * 1024


class TooLarge(ApiError):
    status = 413
    code = "too_large"


# The front server (gunicorn, limit_request_line 8190 in service/serving.py) refuses longer
# request lines in plain HTML; up to there the API answers in its own JSON.
MAX_QUERY_BYTES = 4096


class QueryTooLong(ApiError):
    status = 414
    code = "query_too_long"


class IdConverter(IntegerConverter):
    """`<int:…>` everywhere: only numbers an INTEGER column holds match; anything longer is no
    route (404) before int() is even asked to read a million digits."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,  # noqa: A002
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, MAX_INT if max is None else max, signed)

    def to_python(self, value: str):
        if len(value.lstrip("-")) > len(str(MAX_INT)):
            raise NoRoute()
        return super().to_python(value)


def strict_loads(text: str):
    """json.loads refusing NaN and Infinity (ValueError): not JSON, and PostgreSQL will not store them."""
    return json.loads(text, parse_constant=_not_json)


def _not_json(constant: str):
    raise ValueError(constant)


def int_arg(value: str) -> int:
    """For `request.args.get(name, type=int_arg)`: out of range counts as not a number."""
    number = int(value)
    if not MIN_INT <= number <= MAX_INT:
        raise ValueError(value)
    return number


# Pages of a list in the workspace: far past any list's end, and (page - 1) * size stays an int64.
MAX_PAGE = 10**9


def page_arg(value: str) -> int:
    """For `request.args.get("page", 1, type=page_arg)`: a page past MAX_PAGE is page 1."""
    number = int_arg(value)
    if not 1 <= number <= MAX_PAGE:
        raise ValueError(value)
    return number


class Between(validate.Range):
    """A Range whose message is in the user's language (and which apispec documents as one)."""

    def __call__(self, value):
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValidationError(_("must be a whole number from %(min)s to %(max)s",
                                    min=MIN_INT if self.min is None else self.min,
                                    max=MAX_INT if self.max is None else self.max))
        return value


class Integer(fields.Integer):
    """An integer input that fits a 64-bit column (or the narrower range given)."""

    def __init__(self, *, minimum: int | None = None, maximum: int | None = None, **kwargs) -> None:
        extra = kwargs.pop("validate", None)
        checks = [Between(min=MIN_INT if minimum is None else minimum, max=MAX_INT if maximum is None else maximum)]
        if extra is not None:
            checks += list(extra) if isinstance(extra, list | tuple) else [extra]
        metadata = dict(kwargs.pop("metadata", None) or {}, format="int64")
        super().__init__(validate=checks, metadata=metadata, **kwargs)

    def _validated(self, value):
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JsonObject(fields.Dict):
    """A JSON object of at most `max_bytes` (413 naming the field). Its depth and values were
    checked with the whole body (service/api/blueprint.py)."""

    def __init__(self, *, max_bytes: int = MAX_DATA_BYTES, **kwargs) -> None:
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        size = len(json.dumps(out, ensure_ascii=False).encode())
        if size > self.max_bytes:
            name = self.data_key or self.name
            message = _("at most %(limit)s KB of JSON (this is %(size)s KB)",
                        limit=self.max_bytes // 1024, size=-(-size // 1024))
            raise TooLarge(_("Invalid field: %(fields)s", fields=name), [{"field": name, "message": message}])
        return out

