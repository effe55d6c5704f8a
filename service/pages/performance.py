"""Performance records page (R-SUP-5): what the assessments decided, per department and per person
commended, with the export; `?user=me` shows anyone the records about themselves."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request

from .. import db, performance
from . import signed_in

bp = Blueprint("performance", __name__, url_prefix="/performance")


@bp.get("")
@signed_in
def index():
    period = (request.args.get("period") or "").strip()[:32] or None
    username = (request.args.get("user") or "").strip()[:64] or None
    s = db.session()
    items = performance.records(s, g.user, period, username)
    about = performance.person(s, g.user, username) if username else None
    return render_template("performance.html", items=items, period=period, user=username, about=about)
