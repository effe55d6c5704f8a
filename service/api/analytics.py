"""Analytics as JSON (and CSV/XLSX exports): element statistics of a process for the optimisation
heatmap (R-WF-4), the four indicators per department and person, their trend, and the records
behind them (R-SUP-3). Who sees which department: `service.analytics.scope`."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from .. import analytics, auth, db, exports
from ..errors import Invalid

PREFIX = "/analytics"
blp = Blueprint("analytics", __name__, description="Process optimisation statistics and assessment indicators")


class PeriodArgs(Schema):
    period = fields.String(load_default=None, metadata={"description": "2026-Q4 or 2026-11; default this quarter"})
    start = fields.String(load_default=None, metadata={"description": "YYYY-MM-DD (Beijing), with end"})
    end = fields.String(load_default=None, metadata={"description": "YYYY-MM-DD, exclusive"})


class ElementArgs(PeriodArgs):
    process_key = fields.String(load_default=None)  # required, checked after who may ask
    version = fields.Integer(load_default=None, metadata={"description": "one version; default all"})


class TrendArgs(Schema):
    grain = fields.String(load_default="month", validate=validate.OneOf(("month", "quarter")))
    count = fields.Integer(load_default=12, validate=validate.Range(min=1, max=24))


class ExportArgs(PeriodArgs):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class RecordArgs(PeriodArgs):
    kind = fields.String(load_default=None, metadata={"description": "late | returned | incidents"})


@blp.route("/elements")
class Elements(MethodView):
    @blp.arguments(ElementArgs, location="query")
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
    def get(self, args):
        """The four indicators per department and person (and the platform, for viewers of all)."""
        department = analytics.scope(auth.current_user())
        return analytics.indicators(db.session(), analytics.period(args), department)


@blp.route("/indicators/trend")
class Trend(MethodView):
    @blp.arguments(TrendArgs, location="query")
    def get(self, args):
        """Each indicator per department ('*' the platform) over the last months or quarters."""
        department = analytics.scope(auth.current_user())
        return analytics.trend(db.session(), args["grain"], args["count"], department)


@blp.route("/indicators/records")
class Records(MethodView):
    @blp.arguments(RecordArgs, location="query")
    def get(self, args):
        """The records behind a number: late tasks, returned or rejected decisions, refusals."""
        department = analytics.scope(auth.current_user())
        items = analytics.records(db.session(), args["kind"], analytics.period(args), department)
        return {"kind": args["kind"], "items": items, "total": len(items)}


@blp.route("/indicators/export")
class Export(MethodView):
    @blp.arguments(ExportArgs, location="query")
    def get(self, args):
        """The indicator table (departments, then people) as CSV or XLSX."""
        department = analytics.scope(auth.current_user())
        chosen = analytics.period(args)
        result = analytics.indicators(db.session(), chosen, department)
        body, mimetype = exports.render(analytics.table_rows(result), args["format"])
        name = f"indicators-{chosen.label.replace('/', '_')}.{args['format']}"
        return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})
