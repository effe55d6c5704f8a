"""Performance records (R-SUP-5) as JSON and as a spreadsheet for the HR office."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate

from .. import auth, db, exports, performance
from .blueprint import Blueprint

PREFIX = "/performance-records"
blp = Blueprint("performance", __name__, description="Performance records of assessment results (supervisors, HR)")


class RecordArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    period = fields.String(load_default=None, validate=validate.Regexp(r"^[0-9A-Za-z-]{1,32}$"),
                           metadata={"description": "an assessment period such as 2026-Q4"})
    user = fields.String(load_default=None, validate=validate.Length(min=1, max=64), metadata={
        "description": "the records about one person, by login name; `me` for your own, which everyone may read"})


class ExportArgs(RecordArgs):
    format = fields.String(load_default="xlsx", validate=validate.OneOf(("csv", "xlsx")))


class PerformanceRecordOut(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "commendation | criticism | rectification | penalty"})
    kind_name = fields.String()
    period = fields.String()
    department = fields.String()
    department_code = fields.String()
    user = fields.String(allow_none=True, metadata={"description": "login name of the person the record is about; "
                                                                   "null for the department as a whole"})
    person = fields.String(allow_none=True, metadata={"description": "that person's name"})
    grade = fields.String(allow_none=True)
    score = fields.Float(allow_none=True)
    detail = fields.String()
    deadline = fields.String(allow_none=True)
    assessment_instance_id = fields.Integer(allow_none=True)
    rectification_instance_id = fields.Integer(allow_none=True)
    state = fields.String(allow_none=True, metadata={"description": "rectification records: open, closed (re-check passed), escalated (penalty), unlinked"})
    state_name = fields.String(allow_none=True)
    created_at = fields.String()


class RecordList(Schema):
    items = fields.List(fields.Nested(PerformanceRecordOut))


@blp.route("")
class Records(MethodView):
    @blp.arguments(RecordArgs, location="query")
    @blp.response(200, RecordList)
    def get(self, args):
        """Commendations, criticisms and rectifications decided by the quarterly assessments, of the
        departments and of the people commended; `?user=me` lists the records about yourself."""
        return {"items": performance.records(db.session(), auth.current_user(), args["period"], args["user"])}


@blp.route("/export")
class Export(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(responses={200: {"description": "The records", "content": {
        mimetype: {"schema": {"type": "string", "format": "binary"}}
        for mimetype in ("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}}})
    def get(self, args):
        """The same records as XLSX (default) or CSV, for the HR office."""
        rows = performance.records(db.session(), auth.current_user(), args["period"], args["user"])
        body, mimetype = exports.render(rows, args["format"], performance.COLUMNS)
        name = f"performance-{(args['period'] or 'all')}.{args['format']}"
        return Response(body, mimetype=mimetype, headers={"Content-Disposition": exports.disposition(name)})
