"""Performance records page (R-SUP-5): what the assessments decided, per department, with the export."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request

from .. import db, performance
from . import signed_in

bp = Blueprint("performance", __name__, url_prefix="/performance")


@bp.get("")
@signed_in
def index():
    period = (request.args.get("period") or "").strip()[:32] or None
    items = performance.records(db.session(), g.user, period)
    return render_template("performance.html", items=items, period=period)
