"""Pages for supervisors and administrators: the indicator dashboard (R-SUP-3) with trend charts,
its table, exports and drill-down, and the optimisation view of a process (R-WF-4): a heatmap of
element durations on the diagram, bottlenecks, rework and versions side by side.

The numbers come from `service.analytics` like the JSON API; the charts and the heatmap fetch the
API from the browser (charts.js, viewer.js), the tables are rendered here so the page reads without
script.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, g, render_template, request, url_for
from sqlalchemy import func, select

from .. import analytics, db, feedback_overview
from ..bounds import int_arg
from ..models import ProcessDefinition
from . import signed_in, when

bp = Blueprint("analytics", __name__, url_prefix="/analytics")


@bp.app_template_global()
def may_see_analytics() -> bool:
    user = getattr(g, "user", None)
    return user is not None and analytics.may_see(user)


@bp.app_template_filter("iso_when")
def iso_when(value: str | None) -> str:
    """An ISO timestamp from the analytics JSON, shown like every other moment on the pages."""
    return when(datetime.fromisoformat(value)) if value else ""


def _period_args() -> dict:
    return {k: request.args.get(k, "").strip() for k in ("period", "start", "end") if request.args.get(k)}


@bp.get("")
@signed_in
def dashboard():
    department = analytics.scope(g.user)
    args = _period_args()
    chosen = analytics.period(args)
    result = analytics.indicators(db.session(), chosen, department)
    grain = "quarter" if request.args.get("grain") == "quarter" else "month"
    return render_template("analytics_dashboard.html", result=result, period=chosen, grain=grain,
                           indicators=analytics.SHOWN, drills=analytics.DRILLS,
                           names={code: d["name"] for code, d in result["departments"].items()},
                           choices=analytics.recent("month", 12)[::-1] + analytics.recent("quarter", 4)[::-1],
                           trend_url=url_for("analytics.Trend", grain=grain, count=12 if grain == "month" else 8),
                           query={**args, "period": chosen.label} if not args.get("start") else args)


@bp.get("/records")
@signed_in
def records():
    department = analytics.scope(g.user)
    chosen = analytics.period(_period_args())
    kind = request.args.get("kind", "late")
    items = analytics.records(db.session(), kind, chosen, department)
    return render_template("analytics_records.html", items=items, kind=kind, period=chosen,
                           kinds=analytics.DRILLS)


@bp.get("/feedback")
@signed_in
def feedback():
    department = analytics.scope(g.user)
    chosen = analytics.period(_period_args())
    return render_template("analytics_feedback.html", result=feedback_overview.overview(db.session(), chosen, department),
                           period=chosen,
                           choices=analytics.recent("month", 12)[::-1] + analytics.recent("quarter", 4)[::-1])


@bp.get("/optimise")
@signed_in
def optimise():
    department = analytics.scope(g.user)
    s = db.session()
    latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .group_by(ProcessDefinition.key).subquery())
    processes = s.execute(select(ProcessDefinition.key, ProcessDefinition.name, ProcessDefinition.version).join(
        latest, (ProcessDefinition.key == latest.c.key) & (ProcessDefinition.version == latest.c.v))
        .order_by(ProcessDefinition.name, ProcessDefinition.key)).all()
    key = request.args.get("process") or (processes[0].key if processes else None)
    version = request.args.get("version", type=int_arg)
    chosen = analytics.period(_period_args())
    stats = analytics.element_stats(s, key, version, chosen, department) if key else None
    shown = version or (stats["versions"][-1] if stats else None)
    query = {"process_key": key, "period": chosen.label, **({"version": version} if version else {})}
    if request.args.get("start"):
        query.update(start=request.args["start"], end=request.args.get("end", ""))
        query.pop("period")
    return render_template("analytics_optimise.html", processes=processes, key=key, version=version, shown=shown,
                           stats=stats, period=chosen, choices=analytics.recent("quarter", 4)[::-1]
                           + analytics.recent("month", 12)[::-1],
                           overlay_url=url_for("analytics.Elements", **query) if key else None,
                           xml_url=url_for("process_definitions.DefinitionXml", key=key, version=shown)
                           if key else None, duration=analytics.duration_label)
