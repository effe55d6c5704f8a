"""The audit log for auditors (R-SEC-4, R-SEC-8, issue 15): search and export the log, review the
anomalies found in it. Rules: service/audit_log.py and service/anomaly.py; every read is audited."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .. import audit_log, auth, db
from .blueprint import Blueprint
from .schemas import _In

PREFIX = "/audit"
blp = Blueprint("audit", __name__, description="The audit log and its anomaly review (auditors)")


class EventArgs(_In):
    person = fields.String(metadata={"description": "username of whoever acted"})
    action = fields.String(metadata={"description": "an action code, or several separated by commas"})
    object_type = fields.String()
    object_id = fields.String()
    department = fields.String(metadata={"description": "code of the actor's department"})
    since = fields.String(metadata={"description": "a day (2026-12-03) or a moment (ISO 8601, Beijing time "
                                                   "without an offset), inclusive"})
    until = fields.String(metadata={"description": "a day (inclusive) or a moment (exclusive)"})
    address = fields.String(metadata={"description": "the client's address"})
    q = fields.String(metadata={"description": "words in the detail"})


class EventPageArgs(EventArgs):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, audit_log.MAX_PAGE))
    offset = fields.Integer(load_default=0, validate=validate.Range(0))


class ExportArgs(EventArgs):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class EventOut(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    username = fields.String(allow_none=True)
    full_name = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    department_name = fields.String(allow_none=True)
    action = fields.String()
    action_name = fields.String()
    object_type = fields.String()
    object_name = fields.String()
    object_id = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    detail = fields.Dict()


class EventList(Schema):
    items = fields.List(fields.Nested(EventOut))
    total = fields.Integer()


def _filters() -> audit_log.Filters:
    # The service parses and names a bad filter (the page shares it); the schema documents them.
    return audit_log.parse_filters(request.args)


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(EventPageArgs, location="query")
    @blp.response(200, EventList)
    def get(self, args):
        """Audit rows, newest first, by person, action, object, department, time, address and words
        in the detail. Auditors only; the search is itself audited."""
        found, total = audit_log.search(db.session(), auth.current_user(), _filters(), args["offset"], args["limit"])
        return {"items": found, "total": total}


@blp.route("/events/export")
class EventsExport(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(responses={200: {"description": "The rows", "content": {
        mimetype: {"schema": {"type": "string", "format": "binary"}} for mimetype in ("text/csv", "application/"
                                                                                       "vnd.openxmlformats-officedocument.spreadsheetml.sheet")}}})
    def get(self, args):
        """The same rows as CSV or XLSX (formulas defused). Auditors only; the export is audited."""
        body, mimetype = audit_log.export(db.session(), auth.current_user(), _filters(), args["format"])
        return Response(body, mimetype=mimetype,
                        headers={"Content-Disposition": f'attachment; filename="audit-log.{args["format"]}"'})
