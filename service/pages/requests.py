"""Starting a process, following my requests, and the printable record of a finished one.

Starting calls `instances.start` like the API, withdrawing `instances.withdraw`; what a person may see is `policy.scope_filter` (through `instances.visible_instance`),
the API's rule.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import db, policy
from .. import instances as units
from ..bounds import page_arg
from ..designer_names import designer
from ..errors import Invalid
from ..models import OpenTask, ProcessDefinition, ProcessInstance
from ..studio import catalogue as models_catalogue
from ..studio.models import ProcessModel
from . import diagram, signed_in, timeline

bp = Blueprint("requests", __name__)

PAGE_SIZE = 20
STATES = ("running", "finished")


@bp.get("/start")
@signed_in
def catalogue():
    """What the user may start (the rule `instances.start` applies), by category, filtered by `q`."""
    s = db.session()
    latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .group_by(ProcessDefinition.key).subquery())
    definitions = s.scalars(select(ProcessDefinition).join(
        latest, (ProcessDefinition.key == latest.c.key) & (ProcessDefinition.version == latest.c.v))
        .order_by(ProcessDefinition.name, ProcessDefinition.key)).all()
    hidden = models_catalogue.not_startable(s, g.user)
    startable = [d for d in definitions if d.key not in hidden]
    query = request.args.get("q", "").strip()[:100]
    if query:
        needle = query.casefold()
        startable = [d for d in startable if needle in f"{d.name} {designer(d.name)} {d.key} {d.description}".casefold()]
    # A category set in the studio wins over the one the deployed diagram names.
    studio = dict(s.execute(select(ProcessModel.key, ProcessModel.category).where(ProcessModel.category != "")).all())
    groups: dict[str, list[ProcessDefinition]] = {}
    for d in startable:
        groups.setdefault(studio.get(d.key) or d.category or "", []).append(d)
    # Named categories in order of their names, the uncategorised last.
    categories = sorted(groups.items(), key=lambda item: (item[0] == "", item[0]))
    return render_template("start.html", categories=categories, query=query, total=len(startable))


@bp.post("/start/<string:key>")
@signed_in
def start(key: str):
    user = g.user
    business_key = request.form.get("business_key", "").strip()[:255] or None
    with db.unit_of_work() as s:
        outcome = units.start(s, user, key, business_key)
        instance_id = outcome.instance.id
        first = next((t for t in s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id)
                                           .order_by(OpenTask.created_at))
                      if units.may_complete(user, t)), None)
        first_id = first.id if first else None
    if first_id:
        return redirect(url_for("pages.tasks.task_page", task_id=first_id))
    flash(_("Your request has been started."), "success")
    return redirect(url_for(".detail", instance_id=instance_id))


@bp.get("/requests")
@signed_in
def mine():
    s = db.session()
    state = request.args.get("state")
    page = max(request.args.get("page", 1, type=page_arg), 1)
    query = select(ProcessInstance).where(ProcessInstance.started_by == g.user.id)
    if state == "running":
        query = query.where(ProcessInstance.state.in_(("running", "error")))
    elif state == "finished":
        query = query.where(ProcessInstance.state.in_(units.ENDED))
    total = s.scalar(select(func.count()).select_from(query.subquery()))
    rows = s.scalars(query.order_by(ProcessInstance.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    stories = [timeline.tell(s, row, with_data=False) for row in rows]
    return render_template("requests.html", stories=stories, state=state if state in STATES else None,
                           page=page, more=total > page * PAGE_SIZE, total=total)


def _visible(instance_id: int) -> ProcessInstance:
    return units.visible_instance(db.session(), g.user, instance_id)


@bp.get("/requests/<int:instance_id>")
@signed_in
def detail(instance_id: int, withdraw_error: str | None = None, reason: str = ""):
    s = db.session()
    row = _visible(instance_id)
    story = timeline.tell(s, row)
    mine = {t.task_id for t in story.waiting
            if units.may_complete(g.user, s.get(OpenTask, t.task_id))}
    may_withdraw = policy.allows(g.user, "cancel", "process_instance", row) and units.withdraw_problem(s, g.user, row) is None
    return render_template("request.html", story=story, my_tasks=mine, marks=diagram.marks(s, row),
                           may_withdraw=may_withdraw, withdraw_error=withdraw_error, reason=reason), \
        422 if withdraw_error else 200


@bp.post("/requests/<int:instance_id>/withdraw")
@signed_in
def withdraw(instance_id: int):
    """The initiator takes back their request, with a reason (the API's rule: units.withdraw)."""
    row = _visible(instance_id)
    policy.authorize(g.user, "cancel", "process_instance", row)
    reason = request.form.get("reason", "").strip()
    try:
        with db.unit_of_work() as s:
            units.withdraw(s, g.user, instance_id, reason)
    except Invalid:
        return detail(instance_id, withdraw_error=_("Say why you withdraw the request."), reason=reason)
    flash(_("Your request has been withdrawn."), "success")
    return redirect(url_for(".detail", instance_id=instance_id))


@bp.get("/requests/<int:instance_id>/diagram.xml")
@signed_in
def diagram_xml(instance_id: int):
    """The diagram this instance runs, for whoever may see the instance (as the detail page)."""
    return diagram.xml(db.session(), _visible(instance_id))


@bp.get("/requests/<int:instance_id>/record")
@signed_in
def record(instance_id: int):
    """The paperless equivalent of the signed paper form: fields, decisions, names, times."""
    story = timeline.tell(db.session(), _visible(instance_id))
    return render_template("record.html", story=story), 200 if story.finished else 409
