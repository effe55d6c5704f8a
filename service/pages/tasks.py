"""The task inbox and the task page: claim, release, and complete a task through its form (R-WF-2, R-WF-3).

Every action goes through the same service functions as the API (`instances.claim`,
`instances.complete`, `instances.form_schema`, `instances.delegate`, `substitutes.name`), so the permission checks and the validation are
the same; this module only turns HTML forms into their arguments and their answers into pages.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import db, drafts, inbox, substitutes
from .. import instances as units
from ..api import views
from ..bounds import int_arg
from ..errors import Forbidden, Invalid, InvalidForm
from ..localtime import PLATFORM_TZ
from ..models import OpenTask, ProcessInstance, User, utcnow
from . import diagram, fields, safe_next, signed_in, timeline

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

PAGE_SIZE = 100
# The decision block of approval tasks, as radio buttons and a text area (R-WF-2).
DECISION_UI = {"decision": {"ui:widget": "radio"}, "opinion": {"ui:widget": "textarea", "ui:options": {"rows": 4}}}


@bp.get("")
@signed_in
def inbox_page():
    user = g.user
    s = db.session()
    scope = request.args.get("scope", "mine")
    if scope not in inbox.SCOPES:
        scope = "mine"
    search = request.args.get("q", "").strip()[:100]
    query = inbox.my_tasks(user, scope, search)
    total = inbox.count(s, query)
    try:
        page = inbox.page(query, request.args.get("after"), PAGE_SIZE + 1)
    except inbox.BadCursor:
        page = inbox.page(query, None, PAGE_SIZE + 1)  # a mangled link: the first page
    rows = s.execute(inbox.with_instances(page)).all()
    following = inbox.cursor_of(rows[PAGE_SIZE - 1][0]) if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    starters = _full_names(s, [row.started_by for _task, row, _name in rows])
    items = [{"task": task, "instance": row, "process_name": name, "started_by": starters.get(row.started_by),
              "mine": task.assignee_id == user.id, "shared": _shared(task)} for task, row, name in rows]
    return render_template("inbox.html", items=items, total=inbox.shown_count(total), scope=scope, search=search,
                           scopes=_scope_labels(), now=utcnow(), following=following,
                           first_page=bool(request.args.get("after")))


def _scope_labels() -> list[tuple[str, str]]:
    return [("mine", _("All my tasks")), ("assigned", _("Assigned to me")),
            ("unclaimed", _("Offered to my groups")), ("overdue", _("Overdue"))]


def _shared(task: OpenTask) -> bool:
    """Offered to a group or to several people: then claiming it tells the others to leave it."""
    return len(task.candidates) > 1 or any(c.group_code for c in task.candidates)


def _full_names(s, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(s.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def _visible_task(task_id: str) -> OpenTask:
    """The task, if the user may work on it (as the API decides); otherwise it does not exist for them."""
    return units.visible_task(db.session(), g.user, task_id)


@bp.route("/<string:task_id>", methods=["GET", "POST"])
@signed_in
def task_page(task_id: str):
    user = g.user
    s = db.session()
    task = _visible_task(task_id)
    errors: dict[str, str] = {}
    values = task.data or {}
    intent = request.form.get("intent", "complete")
    if request.method == "POST" and intent in ("draft", "discard"):
        return _keep_draft(task, intent)
    if request.method == "POST":
        schema = units.form_schema(s, task)
        data = fields.parse(schema, request.form)
        try:
            with db.unit_of_work() as s:
                outcome = units.complete(s, user, task_id, data)
                secrets = outcome.one_time
                name = task.name
        except InvalidForm as e:
            errors = {d["field"]: d["message"] for d in e.details or []}
            task = _visible_task(task_id)
            editable = {k for k, node in (schema.get("properties") or {}).items() if not node.get("readOnly")}
            values = {k: v for k, v in (task.data or {}).items() if k not in editable} | data
        else:
            if secrets:
                # Shown once, in this answer only; never stored, never put in the session cookie.
                return render_template("task_done.html", name=name, secrets=secrets)
            flash(_("Done: %(task)s.", task=name), "success")
            return redirect(url_for(".inbox_page"))
    draft = drafts.load(s, task, user)
    if draft is not None and not errors:
        values = values | draft.data
    shape = views.task(s, task, full=True)
    ui = dict(shape["ui_schema"] or {})
    if task.approval:
        ui.update(DECISION_UI)
    form_fields = fields.build(shape["form"], ui, values, errors)
    _attach_uploaded(form_fields)
    decision_names = set(DECISION_UI) if task.approval else set()
    for f in form_fields:
        if f.name == "opinion" and task.approval:
            f.help.append(_("Required when returning or rejecting: say what should change."))
    row = s.get(ProcessInstance, task.instance_id)
    story = timeline.tell(s, row)
    return render_template(
        "task.html", task=task, story=story, claimed_by_me=task.assignee_id == user.id, shared=_shared(task),
        form_fields=[f for f in form_fields if f.name not in decision_names],
        decision_fields=[f for f in form_fields if f.name in decision_names],
        errors=errors, error_list=error_summary(form_fields, errors), draft=draft,
        may_complete=units.may_complete(user, task), marks=diagram.marks(s, row),
        notes=substitutes.notes(s, task.id), delegates=_delegates(s, user, task),
    ), 422 if errors else 200


def _delegates(s, user: User, task: OpenTask) -> list[User]:
    return units.delegates_for(s, user, task) if units.may_complete(user, task) else []


@bp.post("/<string:task_id>/delegate")
@signed_in
def delegate(task_id: str):
    """Hand the task to a colleague (the API's `instances.delegate`); a refusal is told on the task page."""
    task = _visible_task(task_id)
    try:
        with db.unit_of_work() as s:
            units.delegate(s, g.user, task_id, request.form.get("username", ""), request.form.get("reason", ""))
            target = task.assignee_id
            name = task.name
    except Invalid as e:
        flash("；".join(d["message"] for d in e.details or []) or e.message, "error")
        return redirect(url_for(".task_page", task_id=task_id))
    flash(_("You handed “%(task)s” to %(name)s.", task=name, name=_full_names(db.session(), [target]).get(target, "")),
          "success")
    return redirect(url_for(".inbox_page"))


@bp.route("/away", methods=["GET", "POST"])
@signed_in
def away():
    """Out of office: name a colleague who receives the tasks offered to me during a period."""
    s = db.session()
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        try:
            with db.unit_of_work() as s:
                substitutes.name(s, g.user, form.get("substitute", ""), _day(form, "starts_on", errors),
                                 _day(form, "ends_on", errors, end=True), form.get("reason", ""))
        except Invalid as e:
            errors = {**{d["field"]: d["message"] for d in e.details or []}, **errors}
        else:
            flash(_("Your substitute is named; the tasks offered to you in that period reach them too."), "success")
            return redirect(url_for(".away"))
        s = db.session()
    colleagues = s.scalars(select(User).where(User.department_id == g.user.department_id, User.id != g.user.id,
                                              User.active.is_(True)).order_by(User.full_name)).all()
    rows = substitutes.of(s, g.user)
    names = _full_names(s, [r.substitute_id for r in rows])
    today = utcnow().astimezone(PLATFORM_TZ).date()
    return render_template("away.html", colleagues=colleagues, rows=rows, names=names, errors=errors, form=form,
                           today=today.isoformat()), 422 if errors else 200


@bp.post("/away/<int:substitution_id>/end")
@signed_in
def end_away(substitution_id: int):
    with db.unit_of_work() as s:
        substitutes.end(s, g.user, substitution_id)
    flash(_("The substitution has ended."), "success")
    return redirect(url_for(".away"))


def _day(form, name: str, errors: dict[str, str], end: bool = False) -> datetime | None:
    """A Beijing calendar day of the form as its first moment (the day after it, for an end)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        errors[{"starts_on": "starts_at", "ends_on": "ends_at"}[name]] = _("choose a date")
        return None
    moment = datetime(day.year, day.month, day.day, tzinfo=PLATFORM_TZ)
    return moment + timedelta(days=1) if end else moment


def _keep_draft(task: OpenTask, intent: str):
    """Save the half-filled form as the user's draft (no validation), or throw the draft away."""
    user = g.user
    if not units.may_complete(user, task):
        raise Forbidden(_("This task is not assigned to you."))
    with db.unit_of_work() as s:
        if intent == "draft":
            drafts.save(s, task, user, fields.parse(units.form_schema(s, task), request.form))
        else:
            drafts.discard(s, task, user)
    flash(_("Draft saved; it is kept until the task is completed.") if intent == "draft"
          else _("Draft discarded."), "success")
    return redirect(url_for(".task_page", task_id=task.id))


def _attach_uploaded(form_fields: list[fields.Field]) -> None:
    """Back from uploading a document for a document field (`?field=…&attach=id`): choose it there."""
    name, attach = request.args.get("field"), request.args.get("attach", type=int_arg)
    if request.method != "GET" or not name or not attach:
        return
    for f in _walk(form_fields):
        if f.name == name and f.widget == "documents" and not f.attrs.get("readonly"):
            f.value = list(dict.fromkeys([*f.value, attach])) if f.attrs.get("many") else [attach]


def _walk(items: list[fields.Field]):
    for f in items:
        yield f
        for row in f.rows:
            yield from _walk(row)


def error_summary(items: list[fields.Field], errors: dict[str, str]) -> list[tuple[fields.Field | str, str]]:
    """The errors in form order, each with its field to link to; errors of no shown field last."""
    shown = {f.name for f in _walk(items)}
    return [(f, errors[f.name]) for f in _walk(items) if f.name in errors] + [
        (name, message) for name, message in errors.items() if name not in shown]


@bp.post("/<string:task_id>/claim")
@signed_in
def claim(task_id: str):
    with db.unit_of_work() as s:
        name = units.claim(s, g.user, task_id).name
    flash(_("You took the task “%(task)s”; nobody else will work on it.", task=name), "success")
    return redirect(safe_next(request.form.get("next"), url_for(".inbox_page")))


@bp.post("/<string:task_id>/release")
@signed_in
def release(task_id: str):
    with db.unit_of_work() as s:
        name = units.claim(s, g.user, task_id, release=True).name
    flash(_("You gave the task “%(task)s” back to its group.", task=name), "success")
    return redirect(safe_next(request.form.get("next"), url_for(".inbox_page")))
