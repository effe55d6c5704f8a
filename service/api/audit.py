"""The audit log for auditors (R-SEC-4, R-SEC-8, issue 15): search and export the log, review the
anomalies found in it. Rules: service/audit_log.py and service/anomaly.py; every read is audited."""
from __future__ import annotations

from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .. import anomaly, audit_log, auth, db, exports
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
                        headers={"Content-Disposition": exports.disposition(f"audit-log.{args['format']}")})


# --- the anomaly review ----------------------------------------------------------------------------

class FindingArgs(_In):
    status = fields.String(metadata={"description": "open | dismissed | rectifying | incident"})
    rule = fields.String()
    person = fields.String(metadata={"description": "username"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    offset = fields.Integer(load_default=0, validate=validate.Range(0))


class FindingOut(Schema):
    id = fields.Integer(attribute="finding.id")
    rule = fields.String(attribute="finding.rule")
    rule_name = fields.String()
    status = fields.String(attribute="finding.status")
    status_name = fields.String()
    description = fields.String()
    username = fields.String(allow_none=True)
    full_name = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    address = fields.String(attribute="finding.address", allow_none=True)
    facts = fields.Dict(attribute="finding.facts")
    evidence_ids = fields.List(fields.Integer(), attribute="finding.evidence")
    first_at = fields.DateTime(attribute="finding.first_at")
    last_at = fields.DateTime(attribute="finding.last_at")
    found_at = fields.DateTime(attribute="finding.found_at")
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(attribute="finding.decided_at", allow_none=True)
    reason = fields.String(attribute="finding.reason", allow_none=True)
    instance_id = fields.Integer(attribute="finding.instance_id", allow_none=True)


class FindingDetail(FindingOut):
    evidence = fields.List(fields.Nested(EventOut))


class FindingList(Schema):
    items = fields.List(fields.Nested(FindingOut))
    total = fields.Integer()


class ReviewIn(_In):
    since = fields.String(metadata={"description": "as for the log's filters; default: the last day"})
    until = fields.String()


class ReviewOut(Schema):
    found = fields.List(fields.Nested(FindingOut))


class DismissIn(_In):
    reason = fields.String(required=True)


class RectifyIn(_In):
    department = fields.String(metadata={"description": "the responsible department's code; default the person's"})
    severity = fields.String(load_default="medium", validate=validate.OneOf(anomaly.SEVERITIES))
    note = fields.String(load_default="")


class AccessReviewArgs(_In):
    month = fields.String(metadata={"description": "2026-11; default last month"})
    format = fields.String(validate=validate.OneOf(("csv", "xlsx")))


def _detail(shown) -> dict:
    listed, evidence = shown
    return {**listed.__dict__, "evidence": evidence}


@blp.route("/findings")
class Findings(MethodView):
    @blp.arguments(FindingArgs, location="query")
    @blp.response(200, FindingList)
    def get(self, args):
        """What the anomaly review found, newest first. Auditors only; audited."""
        items, total = anomaly.findings(db.session(), auth.current_user(), args.get("status"), args.get("rule"),
                                        args.get("person"), args["offset"], args["limit"])
        return {"items": items, "total": total}


@blp.route("/findings/<int:finding_id>")
class FindingResource(MethodView):
    @blp.response(200, FindingDetail)
    def get(self, finding_id):
        """One finding with its evidence (the audit rows that made it). Auditors only; audited."""
        return _detail(anomaly.finding(db.session(), auth.current_user(), finding_id))


@blp.route("/findings/<int:finding_id>/dismiss")
class FindingDismiss(MethodView):
    @blp.arguments(DismissIn)
    @blp.response(200, FindingDetail)
    def post(self, body, finding_id):
        """Close an open finding as no anomaly, with the reason. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            found = anomaly.dismiss(s, user, finding_id, body["reason"])
        return _detail(anomaly.shown(db.session(), found))


@blp.route("/findings/<int:finding_id>/rectify")
class FindingRectify(MethodView):
    @blp.arguments(RectifyIn)
    @blp.response(200, FindingDetail)
    def post(self, body, finding_id):
        """Hand an open finding to the responsible department: starts an issue_rectification instance
        (category 平台安全) and links it. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            found = anomaly.rectify(s, user, finding_id, body.get("department"), body["severity"], body["note"])
        return _detail(anomaly.shown(db.session(), found))


class IncidentIn(_In):
    note = fields.String(load_default="", validate=validate.Length(max=2000))


@blp.route("/findings/<int:finding_id>/incident")
class FindingIncident(MethodView):
    @blp.arguments(IncidentIn)
    @blp.response(200, FindingDetail)
    def post(self, body, finding_id):
        """Hand an open finding to the platform as a security incident: starts a security_incident
        instance with the finding as its report and links it. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            found = anomaly.open_incident(s, user, finding_id, body["note"])
        return _detail(anomaly.shown(db.session(), found))


@blp.route("/review")
class Review(MethodView):
    @blp.arguments(ReviewIn)
    @blp.response(200, ReviewOut)
    def post(self, body):
        """Run the anomaly review now (it also runs every night) over [since, until); answers the new findings."""
        user = auth.current_user()
        window = audit_log.parse_filters(body)
        with db.unit_of_work() as s:
            made = anomaly.review(s, user, window.since, window.until)
        return {"found": [anomaly.shown(db.session(), f)[0] for f in made]}


@blp.route("/access-review")
class AccessReview(MethodView):
    @blp.arguments(AccessReviewArgs, location="query")
    @blp.doc(responses={200: {"description": "The month's access review (JSON, or CSV/XLSX with `format`)"}})
    def get(self, args):
        """The monthly access review for supervisors: per department, sign-ins, failed sign-ins,
        reads, downloads and findings; by rule, the findings and what became of them. Audited."""
        report = anomaly.access_review(db.session(), auth.current_user(), args.get("month"))
        if args.get("format"):
            body, mimetype = exports.render(report["departments"], args["format"], anomaly.ACCESS_COLUMNS)
            return Response(body, mimetype=mimetype, headers={
                "Content-Disposition": exports.disposition(f"access-review-{report['month']}.{args['format']}")})
        return jsonify({**report, "start": report["start"].isoformat(), "end": report["end"].isoformat()})
