"""The monthly process evaluations for supervisors (R-WF-4 "定期对工作流程进行评估和优化", issue 18):
the list of evaluated processes (latest month, how many suggestions, the step most often overdue)
and one evaluation — per step median and p90 duration, overdue rate, rework loops, the versions side
by side and the suggestions in words.

The evaluations are written by the monthly job (service/evaluation.py); these pages only read them.
Who may read them is who may read analytics (`analytics.scope`), as for the API's
/api/v1/analytics/evaluations. An evaluation covers the whole process, every department.
"""
from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import analytics, db, evaluation
from ..designer_names import designer, english
from ..errors import Invalid, NotFound
from ..models import ProcessDefinition, ProcessEvaluation
from . import signed_in

bp = Blueprint("analytics_evaluations", __name__, url_prefix="/analytics/evaluations")


def _process_names(s, keys: list[str]) -> dict[str, str]:
    """Each process's name as its newest version calls it."""
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .where(ProcessDefinition.key.in_(keys)).group_by(ProcessDefinition.key).subquery())
    return dict(s.execute(select(ProcessDefinition.key, ProcessDefinition.name).join(
        newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.v))).all())


def _worst_overdue(body: dict) -> dict | None:
    """The step overdue most often (share, then cases), if any step was overdue at all."""
    late = [st for st in body.get("steps", []) if st.get("overdue_rate")]
    return max(late, key=lambda st: (st["overdue_rate"], st["late"])) if late else None


def _month_name(label: str) -> str:
    """「2026年12月」, or 2026-12 for a reader of English."""
    return label if english() else analytics.month(label).name


@bp.get("")
@signed_in
def index():
    analytics.scope(g.user)
    s = db.session()
    newest = (select(ProcessEvaluation.process_key, func.max(ProcessEvaluation.period).label("period"))
              .group_by(ProcessEvaluation.process_key).subquery())
    rows = s.scalars(select(ProcessEvaluation).join(
        newest, (ProcessEvaluation.process_key == newest.c.process_key) & (ProcessEvaluation.period == newest.c.period))
        .order_by(ProcessEvaluation.process_key)).all()
    names = _process_names(s, [r.process_key for r in rows])
    items = [{"key": r.process_key, "name": names.get(r.process_key), "period": r.period,
              "period_name": _month_name(r.period), "suggestions": len(r.body.get("suggestions", [])),
              "worst": _worst_overdue(r.body)} for r in rows]
    items.sort(key=lambda x: ((designer(x["name"]) or x["key"]).casefold(), x["key"]))
    return render_template("analytics_evaluations.html", items=items)


@bp.get("/<process_key>")
@signed_in
def detail(process_key: str):
    analytics.scope(g.user)
    s = db.session()
    month = (request.args.get("month") or "").strip()
    if month:
        try:
            analytics.month(month)
        except ValueError:
            message = _("a month such as 2026-11")
            raise Invalid(message, [{"field": "month", "message": message}]) from None
    months = [r.period for r in evaluation.history(s, process_key)]
    name = _process_names(s, [process_key]).get(process_key)
    if month:
        row = s.scalar(select(ProcessEvaluation).where(ProcessEvaluation.process_key == process_key,
                                                       ProcessEvaluation.period == month))
        if row is None:
            raise NotFound(_("There is no evaluation of this process for %(month)s.", month=_month_name(month)))
    else:
        row = evaluation.latest(s, process_key)
        if row is None and name is None:
            raise NotFound(_("Process '%(key)s' is not deployed.", key=process_key))
    shown = None
    if row is not None:
        shown = dict(evaluation.shown(row), period_name=_month_name(row.period))
        # The same words as everywhere (evaluation.suggestion_text), with the step named as the reader reads it.
        shown["suggestions"] = [
            dict(item, text=evaluation.suggestion_text(dict(item, name=designer(item.get("name")) or item["element_id"])))
            for item in row.body.get("suggestions", [])]
        ran = {int(v) for st in row.body.get("steps", []) for v in st.get("versions", {})}
        shown["compared"] = sorted(ran)
    return render_template("analytics_evaluation.html", key=process_key, name=name, evaluation=shown,
                           months=[(m, _month_name(m)) for m in months], month=row.period if row else None,
                           duration=analytics.duration_label)
