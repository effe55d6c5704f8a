"""Scores per person page (R-SUP-3, R-SUP-5): the quarter's figures and score of each person the
reader may see — themselves; as a department's head, its people; as a supervisor or system
administrator, everyone (`service.person_scores`, like GET /api/v1/person-scores)."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request

from .. import db, person_scores
from . import signed_in

bp = Blueprint("person_scores", __name__, url_prefix="/performance/people")


@bp.get("")
@signed_in
def index():
    period = (request.args.get("period") or "").strip()[:32] or None
    department = (request.args.get("department") or "").strip()[:64] or None
    result = person_scores.scores(db.session(), g.user, period, department)
    return render_template("person_scores.html", result=result, department=department,
                           choices=person_scores.recent_quarters())
