"""The API's Blueprint: flask-smorest's, with a JSON parser that answers bad bodies as 4xx.

webargs would let json.loads' RecursionError (a list nested 100 000 deep) and the values no
database stores (NaN, NUL, lone surrogates; engine/bounds.py) through as 500s, and reports a
malformed body in a shape the error handler cannot name. Here a JSON body is at most
MAX_JSON_BYTES, strict JSON, and bounded in depth and values before any schema sees it.
"""
from __future__ import annotations

import json

import flask_smorest
from flask import request
from flask_babel import gettext as _
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from engine import bounds as data_bounds
from engine.errors import DataProblem

from ..bounds import MAX_QUERY_BYTES, QueryTooLong, TooLarge, strict_loads
from ..errors import BadJson, Invalid, problem_details

# Larger than any form or studio draft (service/studio/catalogue.py MAX_DRAFT_BYTES is 5 MB);
# files come as multipart, which this does not touch.
MAX_JSON_BYTES = 8 * 1024 * 1024


class Parser(FlaskParser):
    def load_querystring(self, req, schema):
        if len(req.query_string) > MAX_QUERY_BYTES:
            raise QueryTooLong(_("The address is too long."), [{"field": "query", "message": _(
                "at most %(limit)s bytes of query", limit=MAX_QUERY_BYTES)}])
        return super().load_querystring(req, schema)

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        if req.content_length is not None and req.content_length > MAX_JSON_BYTES:
            raise TooLarge(_("The request body is too large."), [{"field": "body", "message": _(
                "at most %(limit)s MB of JSON", limit=MAX_JSON_BYTES // (1024 * 1024))}])
        raw = req.get_data(cache=True)
        if not raw.strip():
            return core.missing  # no body: the schema's defaults and required fields decide
        try:
            value = strict_loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadJson(_("The request body is not UTF-8."),
                          [{"field": "body", "message": _("not UTF-8 text")}]) from None
        except json.JSONDecodeError as e:
            where = _("line %(line)s, column %(column)s: %(error)s", line=e.lineno, column=e.colno, error=e.msg)
            raise BadJson(_("The request body is not valid JSON."), [{"field": "body", "message": where}]) from None
        except ValueError as e:  # NaN, Infinity
            raise BadJson(_("The request body is not valid JSON."),
                          [{"field": "body", "message": _("%(value)s is not a JSON value", value=str(e))}]) from None
        except RecursionError:
            found = DataProblem("body", data_bounds.TOO_DEEP, {"limit": data_bounds.MAX_DEPTH})
            raise Invalid(_("Invalid field: %(fields)s", fields="body"), problem_details(found)) from None
        found = data_bounds.problem(value)
        if found is not None:
            found = DataProblem(found.field or "body", found.template, found.params)
            raise Invalid(_("Invalid field: %(fields)s", fields=found.field), problem_details(found))
        return value


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()

    def arguments(self, schema, *args, **kwargs):
        # Given a Schema class, webargs makes an instance of it on every request (a quarter of a
        # millisecond for the task list's arguments); one instance serves every request.
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)



# RFC 7240: a client that needs only the new state (a script, a bench loop) says so and spares the
# answer the instance's history (two statements and most of the body).
PREFER_MINIMAL = {"in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
                  "description": "return=minimal: the answer without completed_elements and history"}
APPLIED_MINIMAL = {"Preference-Applied": "return=minimal"}


def wants_minimal() -> bool:
    return "return=minimal" in request.headers.get("Prefer", "").replace(" ", "").lower()
