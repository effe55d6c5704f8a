"""The home page: what waits for me and how my requests stand."""
from __future__ import annotations

from flask import Blueprint, g, render_template
from sqlalchemy import func, select

from .. import db, inbox
from ..instances import ENDED
from ..models import ProcessInstance
from . import signed_in

bp = Blueprint("home", __name__)


@bp.get("/")
@signed_in
def index():
    s = db.session()
    user = g.user
    mine = select(func.count()).select_from(ProcessInstance).where(ProcessInstance.started_by == user.id)
    counts = {
        "tasks": inbox.count(s, inbox.my_tasks(user)),
        "assigned": inbox.count(s, inbox.my_tasks(user, "assigned")),
        "overdue": inbox.count(s, inbox.my_tasks(user, "overdue")),
        "running": s.scalar(mine.where(ProcessInstance.state.in_(("running", "error")))),
        "finished": s.scalar(mine.where(ProcessInstance.state.in_(ENDED))),
    }
    return render_template("home.html", counts=counts)
