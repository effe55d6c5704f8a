"""Supervisors' live views (R-WF-3, R-SUP-1): the process overview with counts on the diagram,
one instance's path and timeline with the admin actions, and the overdue and incident lists.

Queries live in `service/supervision.py`; actions call `service/instances.py` like the API does,
each with a mandatory reason that goes to the audit log. Every fact drawn on a diagram is also in
a table on the same page (screen readers, no JavaScript).
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db, supervision
from .. import instances as units
from ..bounds import int_arg
from ..errors import Forbidden, NotFound
from ..models import InstanceStep, OpenTask, ProcessDefinition, User
from . import signed_in, timeline

bp = Blueprint("supervise", __name__, url_prefix="/supervise")

REFRESH_SECONDS = 5


def _supervisor():
    user = g.user
    supervision.scope(user)  # Forbidden for people who supervise nothing
    return user


@bp.app_template_global()
def may_supervise() -> bool:
    user = getattr(g, "user", None)
    return user is not None and supervision.may_supervise(user)


@bp.get("")
@signed_in
def index():
    user = _supervisor()
    return render_template("supervise_index.html", processes=supervision.processes(db.session(), user))


@bp.get("/processes/<string:key>")
@signed_in
def process(key: str):
    user = _supervisor()
    s = db.session()
    d = supervision.definition(s, key, request.args.get("version", type=int_arg))
    counts = supervision.element_counts(s, user, d)
    element = request.args.get("element") or None
    names = supervision.element_names(s, d)
    return render_template("supervise_process.html", d=d, versions=supervision.versions(s, key), counts=counts,
                           waiting=supervision.waiting_at(s, user, d), element=element,
                           element_name=names.get(element, (element, ""))[0] if element else None,
                           refresh=REFRESH_SECONDS)


@bp.get("/instances/<int:instance_id>")
@signed_in
def instance(instance_id: int, errors: dict | None = None, status: int = 200):
    user = _supervisor()
    s = db.session()
    row = supervision.supervised_instance(s, user, instance_id)
    story = timeline.tell(s, row, with_data=supervision.sees_data(s, user, row))
    rights = supervision.rights(user, row)
    completed = list(dict.fromkeys(s.scalars(select(InstanceStep.element_id).where(  # in the order passed
        InstanceStep.instance_id == row.id, InstanceStep.kind != "moved_back").order_by(InstanceStep.id))))
    active = row.active_elements or []
    names = {eid: name for eid, (name, _kind) in supervision.element_names(s, s.get(ProcessDefinition, row.definition_id)).items()}
    return render_template(
        "supervise_instance.html", story=story, names=names, rights=rights, sees_data=supervision.sees_data(s, user, row), errors=errors or {},
        durations=_durations(story.steps), completed=completed,
        current=sorted({a["element_id"] for a in active if a.get("state") != "ERROR"}),
        failed=sorted({a["element_id"] for a in active if a.get("state") == "ERROR"}),
        earlier=units.earlier_steps(s, row) if "move_back" in rights else [],
        users=_active_users(s) if "reassign" in rights else []), status


def _durations(steps) -> list:
    """How long each step took: from the step before it to its own completion."""
    out, previous = [], None
    for st in steps:
        out.append(st.at - previous if previous is not None and st.at and st.at >= previous else None)
        previous = st.at or previous
    return out


def _active_users(s) -> list[User]:
    return list(s.scalars(select(User).where(User.active.is_(True)).order_by(User.full_name)))


def _reason_or_form(instance_id: int, action: str):
    """The reason of an admin action, or the instance page again with the field marked (422)."""
    reason = (request.form.get("reason") or "").strip()[:1000]
    if reason:
        return reason, None
    return None, instance(instance_id, errors={action: _("Give a reason: it is kept in the audit log.")}, status=422)


def _allowed(instance_id: int, action: str):
    s = db.session()
    row = supervision.supervised_instance(s, _supervisor(), instance_id)
    if action not in supervision.rights(g.user, row):
        raise Forbidden(_("You are not allowed to do this."))
    return row


def _act(instance_id: int, action: str, run: Callable[[Session, str], object], done: str,
         check: Callable[[], object] | None = None):
    """An administrator's action on an instance: allowed by the permission table, with a reason
    (kept in the audit log), in one unit of work; the page again with an error when the reason is missing."""
    _allowed(instance_id, action)
    if check is not None:
        check()
    reason, page = _reason_or_form(instance_id, action)
    if page:
        return page
    with db.unit_of_work() as s:
        run(s, reason)
    flash(done, "success")
    return redirect(url_for(".instance", instance_id=instance_id))


@bp.post("/instances/<int:instance_id>/retry")
@signed_in
def retry(instance_id: int):
    return _act(instance_id, "retry", lambda s, reason: units.retry(s, g.user, instance_id, reason),
                _("The failed step was run again."))


@bp.post("/instances/<int:instance_id>/cancel")
@signed_in
def cancel(instance_id: int):
    return _act(instance_id, "cancel", lambda s, reason: units.cancel(s, g.user, instance_id, reason),
                _("The instance was cancelled."))


@bp.post("/instances/<int:instance_id>/move-back")
@signed_in
def move_back(instance_id: int):
    element_id = request.form.get("element_id", "")
    return _act(instance_id, "move_back", lambda s, reason: units.move_back(s, g.user, instance_id, element_id, reason),
                _("The instance was moved back."))


@bp.post("/instances/<int:instance_id>/reassign")
@signed_in
def reassign(instance_id: int):
    task_id, username = request.form.get("task_id", ""), request.form.get("username", "")

    def task_of_this_instance():
        task = db.session().get(OpenTask, task_id)
        if task is None or task.instance_id != instance_id:
            raise NotFound(_("Task not found or already completed."))

    return _act(instance_id, "reassign", lambda s, reason: units.reassign(s, g.user, task_id, username, reason),
                _("The task was reassigned."), check=task_of_this_instance)


@bp.get("/overdue")
@signed_in
def overdue():
    return _list("overdue")


@bp.get("/incidents")
@signed_in
def incidents():
    return _list("incidents")


def _list(kind: str):
    user = _supervisor()
    s = db.session()
    filters = supervision.Filters.parse(request.args)
    rows = [] if filters.errors else (supervision.overdue_tasks if kind == "overdue"
                                      else supervision.incident_instances)(s, user, filters)
    return render_template("supervise_list.html", kind=kind, rows=rows, filters=filters,
                           processes=supervision.processes(s, user), departments=supervision.departments(s),
                           limit=supervision.LIST_LIMIT), 422 if filters.errors else 200
