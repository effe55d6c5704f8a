"""My notifications as a page (issue 6): newest first, mark read, and a link to what each is about.

The same table and sentences as /api/v1/notifications (service/notifications.py); the unread
count in the navigation comes from `unread_count`.
"""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from .. import db
from ..bounds import page_arg
from ..errors import NotFound
from ..models import Notification, OpenTask, utcnow
from ..notifications import sentence
from . import signed_in

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

PAGE_SIZE = 50


def unread_count() -> int:
    user = getattr(g, "user", None)
    if user is None:
        return 0
    return db.session().scalar(select(func.count()).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


@bp.app_context_processor
def _nav_count():
    return {"unread_count": unread_count}


@bp.get("")
@signed_in
def index():
    s = db.session()
    unread_only = request.args.get("show") == "unread"
    query = select(Notification).where(Notification.user_id == g.user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    page = max(request.args.get("page", 1, type=page_arg), 1)
    total = s.scalar(select(func.count()).select_from(query.subquery()))
    rows = s.scalars(query.order_by(Notification.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    items = [{"row": n, "message": sentence(n.kind, n.title, n.body)} for n in rows]
    return render_template("notifications.html", items=items, unread_only=unread_only, page=page,
                           more=total > page * PAGE_SIZE)


def _mine(s, notification_id: int) -> Notification:
    n = s.get(Notification, notification_id)
    if n is None or n.user_id != g.user.id:
        raise NotFound(_("Not found."))
    return n


@bp.post("/<int:notification_id>/open")
@signed_in
def open_one(notification_id: int):
    """Mark it read and go to what it is about: the task while it is open, else the request."""
    with db.unit_of_work() as s:
        n = _mine(s, notification_id)
        n.read_at = n.read_at or utcnow()
        task_open = n.task_id is not None and s.get(OpenTask, n.task_id) is not None
        target = (url_for("pages.tasks.task_page", task_id=n.task_id) if task_open
                  else url_for("pages.requests.detail", instance_id=n.instance_id) if n.instance_id
                  else url_for(".index"))
    return redirect(target)


@bp.post("/<int:notification_id>/read")
@signed_in
def read_one(notification_id: int):
    with db.unit_of_work() as s:
        n = _mine(s, notification_id)
        n.read_at = n.read_at or utcnow()
    return redirect(url_for(".index"))


@bp.post("/read-all")
@signed_in
def read_all():
    with db.unit_of_work() as s:
        s.execute(update(Notification).where(Notification.user_id == g.user.id, Notification.read_at.is_(None))
                  .values(read_at=utcnow()))
    return redirect(url_for(".index"))
