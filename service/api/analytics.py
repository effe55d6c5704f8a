"""Analytics as JSON (and CSV/XLSX exports): element statistics of a process for the optimisation
heatmap (R-WF-4), the four indicators per department and person, their trend, and the records
behind them (R-SUP-3). Who sees which department: `service.analytics.scope`."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate

from .. import analytics, auth, db, evaluation, exports, feedback_overview
from ..bounds import Integer
from ..errors import Invalid
from .blueprint import Blueprint

PREFIX = "/analytics"
blp = Blueprint("analytics", __name__, description="Process optimisation statistics and assessment indicators")


class PeriodArgs(Schema):
    period = fields.String(load_default=None, metadata={"description": "2026-Q4 or 2026-11; default this quarter"})
    start = fields.String(load_default=None, metadata={"description": "YYYY-MM-DD (Beijing), with end"})
    end = fields.String(load_default=None, metadata={"description": "YYYY-MM-DD, exclusive"})


class ElementArgs(PeriodArgs):
    process_key = fields.String(load_default=None)  # required, checked after who may ask
    version = Integer(load_default=None, minimum=1, metadata={"description": "one version; default all"})


class TrendArgs(Schema):
    grain = fields.String(load_default="month", validate=validate.OneOf(("month", "quarter")))
    count = Integer(load_default=12, minimum=1, maximum=24)


class ExportArgs(PeriodArgs):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class RecordArgs(PeriodArgs):
    kind = fields.String(load_default=None, metadata={
        "description": "people | due | late | submissions | returned | incidents"})


# --- answers -----------------------------------------------------------------------------------

class PeriodOut(Schema):
    label = fields.String(metadata={"description": "2026-Q4 or 2026-11"})
    name = fields.String()
    start = fields.String(metadata={"description": "ISO 8601, inclusive"})
    end = fields.String(metadata={"description": "ISO 8601, exclusive"})


class ElementStatsOut(Schema):
    count = fields.Integer()
    mean = fields.Float(allow_none=True, metadata={"description": "seconds"})
    median = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)
    waited = fields.Integer()
    wait_mean = fields.Float(allow_none=True)
    wait_median = fields.Float(allow_none=True)
    wait_p90 = fields.Float(allow_none=True)
    returns = fields.Integer()
    reentries = fields.Integer()


class ElementOut(Schema):
    name = fields.String()
    heat = fields.Float(metadata={"description": "mean duration relative to the slowest element, 0..1"})
    label = fields.String()
    title = fields.String()
    stats = fields.Nested(ElementStatsOut)
    versions = fields.Dict(keys=fields.String(), values=fields.Nested(ElementStatsOut))


class ElementsOut(Schema):
    process_key = fields.String()
    versions = fields.List(fields.Integer())
    period = fields.Nested(PeriodOut)
    elements = fields.Dict(keys=fields.String(), values=fields.Nested(ElementOut), metadata={
        "description": "element id → statistics"})
    bottlenecks = fields.List(fields.String(), metadata={"description": "element ids, slowest first"})


class IndicatorsOut(Schema):
    period = fields.Nested(PeriodOut)
    computed_at = fields.String(metadata={"description": "ISO 8601"})
    departments = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "department code → its indicators, counts and people"})
    platform = fields.Dict(allow_none=True, metadata={"description": "null unless the caller sees every department"})


class TrendOut(Schema):
    grain = fields.String()
    periods = fields.List(fields.Nested(PeriodOut))
    series = fields.Dict(keys=fields.String(), values=fields.Dict(
        keys=fields.String(), values=fields.List(fields.Float(allow_none=True))), metadata={
        "description": "indicator → department code ('*' the platform) → one value per period"})


class RecordOut(Schema):
    instance_id = fields.Integer(allow_none=True)
    element_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    flagged_at = fields.String(allow_none=True)
    decision = fields.String(allow_none=True)
    who = fields.String(allow_none=True)
    process_key = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    kind = fields.String(allow_none=True, metadata={"description": "incidents: login_burst, refusal, procedure, "
                                                                   "fault or finding"})
    on_time = fields.Boolean(allow_none=True)
    passed = fields.Boolean(allow_none=True)
    first_pass = fields.Boolean(allow_none=True)
    decisions = fields.List(fields.String(), allow_none=True)
    # people (usage)
    name_of_person = fields.String(attribute="name", dump_only=True, data_key="full_name", allow_none=True)
    department = fields.String(allow_none=True)
    used = fields.Boolean(allow_none=True)
    tasks_completed = fields.Integer(allow_none=True)
    instances_started = fields.Integer(allow_none=True)
    documents_filed = fields.Integer(allow_none=True)


class RecordsOut(Schema):
    kind = fields.String(allow_none=True)
    items = fields.List(fields.Nested(RecordOut))
    total = fields.Integer()


class EvaluationArgs(Schema):
    process_key = fields.String(load_default=None, validate=validate.Length(max=128))  # required, checked after who may ask


class SuggestionOut(Schema):
    code = fields.String(metadata={"description": "overdue | rework | version | bottleneck"})
    element_id = fields.String()
    name = fields.String(allow_none=True)
    text = fields.String(metadata={"description": "the suggestion in the reader's language"})


class EvaluationStepOut(Schema):
    element_id = fields.String()
    name = fields.String(allow_none=True)
    count = fields.Integer()
    median_s = fields.Float(allow_none=True)
    p90_s = fields.Float(allow_none=True)
    returns = fields.Integer()
    reentries = fields.Integer()
    with_deadline = fields.Integer()
    late = fields.Integer()
    overdue_rate = fields.Float(allow_none=True)


class EvaluationOut(Schema):
    process_key = fields.String()
    period_label = fields.String()
    created_at = fields.DateTime()
    versions = fields.List(fields.Integer())
    steps = fields.List(fields.Nested(EvaluationStepOut))
    suggestions = fields.List(fields.Nested(SuggestionOut))


class EvaluationsOut(Schema):
    items = fields.List(fields.Nested(EvaluationOut))


class FeedbackGroupOut(Schema):
    key = fields.String(metadata={"description": "category code, or department code"})
    name = fields.String()
    received = fields.Integer(metadata={"description": "started in the period"})
    answered = fields.Integer(metadata={"description": "of those, answered (ended) by now"})
    open = fields.Integer(metadata={"description": "still open, whenever they started"})
    overdue = fields.Integer()
    median_hours = fields.Float(allow_none=True, metadata={"description": "time to answer, of those answered"})
    p90_hours = fields.Float(allow_none=True)


class FeedbackItemOut(Schema):
    instance_id = fields.Integer()
    subject = fields.String()
    category = fields.String()
    category_name = fields.String()
    department = fields.String(allow_none=True)
    department_name = fields.String(allow_none=True)
    started_at = fields.DateTime()
    overdue = fields.Boolean()


class FeedbackOut(Schema):
    period = fields.Nested(PeriodOut)
    total = fields.Integer()
    categories = fields.List(fields.Nested(FeedbackGroupOut))
    departments = fields.List(fields.Nested(FeedbackGroupOut))
    open = fields.List(fields.Nested(FeedbackItemOut))


EXPORT = {"type": "string", "format": "binary"}


@blp.route("/elements")
class Elements(MethodView):
    @blp.arguments(ElementArgs, location="query")
    @blp.response(200, ElementsOut)
    def get(self, args):
        """Per element of a process: count, mean/median/p90 duration and waiting time (seconds),
        returns and re-entries, per version too; `elements` doubles as the viewer's heat overlay."""
        department = analytics.scope(auth.current_user())
        if not args["process_key"]:
            message = _("Choose a process.")
            raise Invalid(message, [{"field": "process_key", "message": message}])
        chosen = analytics.period(args)
        return analytics.element_stats(db.session(), args["process_key"], args["version"], chosen, department)


@blp.route("/indicators")
class Indicators(MethodView):
    @blp.arguments(PeriodArgs, location="query")
    @blp.response(200, IndicatorsOut)
    def get(self, args):
        """The four indicators per department and person (and the platform, for viewers of all)."""
        department = analytics.scope(auth.current_user())
        return analytics.indicators(db.session(), analytics.period(args), department)


@blp.route("/indicators/trend")
class Trend(MethodView):
    @blp.arguments(TrendArgs, location="query")
    @blp.response(200, TrendOut)
    def get(self, args):
        """Each indicator per department ('*' the platform) over the last months or quarters."""
        department = analytics.scope(auth.current_user())
        return analytics.trend(db.session(), args["grain"], args["count"], department)


@blp.route("/indicators/records")
class Records(MethodView):
    @blp.arguments(RecordArgs, location="query")
    @blp.response(200, RecordsOut)
    def get(self, args):
        """The records behind a number: late tasks, returned or rejected decisions, refusals."""
        department = analytics.scope(auth.current_user())
        items = analytics.records(db.session(), args["kind"], analytics.period(args), department)
        return {"kind": args["kind"], "items": items, "total": len(items)}


@blp.route("/evaluations")
class Evaluations(MethodView):
    @blp.arguments(EvaluationArgs, location="query")
    @blp.response(200, EvaluationsOut)
    def get(self, args):
        """A process's monthly evaluations, newest first (R-WF-4): per step count, median and p90,
        returns and rework, overdue rate; suggestions in words."""
        analytics.scope(auth.current_user())
        if not args["process_key"]:
            message = _("Choose a process.")
            raise Invalid(message, [{"field": "process_key", "message": message}])
        rows = evaluation.history(db.session(), args["process_key"])
        return {"items": [evaluation.shown(r) for r in rows]}


@blp.route("/feedback")
class Feedback(MethodView):
    @blp.arguments(PeriodArgs, location="query")
    @blp.response(200, FeedbackOut)
    def get(self, args):
        """Feedback taken together (R-SUP-2): per category received, answered and time to answer;
        per responsible department open and overdue; the open items."""
        department = analytics.scope(auth.current_user())
        chosen = analytics.period(args)
        return dict(feedback_overview.overview(db.session(), chosen, department), period=analytics.period_json(chosen))


@blp.route("/indicators/export")
class Export(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(responses={200: {"description": "The table", "content": {
        mimetype: {"schema": EXPORT} for mimetype in exports.MIMETYPES.values()}}})
    def get(self, args):
        """The indicator table (departments, then people) as CSV or XLSX."""
        department = analytics.scope(auth.current_user())
        chosen = analytics.period(args)
        result = analytics.indicators(db.session(), chosen, department)
        body, mimetype = exports.render(analytics.table_rows(result), args["format"])
        name = f"indicators-{chosen.label.replace('/', '_')}.{args['format']}"
        return Response(body, mimetype=mimetype, headers={"Content-Disposition": exports.disposition(name)})
