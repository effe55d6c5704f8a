from __future__ import annotations

from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import select

from .. import auth, db, inbox, policy
from .. import instances as units
from ..errors import Invalid
from ..models import OpenTask, ProcessInstance, utcnow
from . import views
from .blueprint import APPLIED_MINIMAL, PREFER_MINIMAL, Blueprint, wants_minimal
from .schemas import CompleteTask, InstanceOut, ReassignTask, TaskArgs, TaskList, TaskOut

PREFIX = "/tasks"
blp = Blueprint("tasks", __name__, description="User tasks")


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskArgs, location="query")
    @blp.response(200, TaskList)
    def get(self, args):
        """Open tasks: `scope=mine` (default: assigned to me or offered to me or my groups),
        `assigned`, `unclaimed`; `all` for system administrators."""
        user = auth.current_user()
        s = db.session()
        every = args["scope"] == "all" and policy.allows(user, "list_all", "task")
        scope = "mine" if args["scope"] == "all" else args["scope"]
        # Each filter's bind parameter is named after it; `overdue` compares deadlines with now.
        values = {name: utcnow() if name == "overdue" else args[name] for name in inbox.FILTERS if args.get(name)}
        query = None
        if values and not every and not args.get("after"):
            # A filtered first page (the tasks of one instance): one statement built once per shape.
            params = {"me": user.id, "size": args["limit"] + 1, "skip": args["offset"], **values}
            if user.groups:
                params["my_groups"] = list(user.groups)
            rows = inbox.read(s, inbox.filtered_page(scope, bool(user.groups), tuple(values)), params)
        else:
            query = _query(user, every, scope, values)
            try:
                ids = inbox.page_ids(query, args.get("after"), args["limit"] + 1, args["offset"])
            except inbox.BadCursor:
                message = _("This page link is not valid; start from the first page.")
                raise Invalid(message, [{"field": "after", "message": message}]) from None
            # Candidates in the same statement: every item shows them.
            rows = inbox.read(s, inbox.listed(ids))
        more = len(rows) > args["limit"]
        # A first page that holds them all is the count (the tasks of one instance, a short list).
        whole = not more and not args.get("after") and not args["offset"]
        if whole:
            total = len(rows)
        else:
            total = inbox.count(s, query if query is not None else _query(user, every, scope, values))
        rows = rows[:args["limit"]]
        return {"items": [views.task(s, t) for t in rows], "total": min(total, inbox.COUNT_CAP),
                "total_capped": total > inbox.COUNT_CAP, "next": inbox.cursor_of(rows[-1]) if more else None}


def _query(user, every: bool, scope: str, values: dict):
    """The list as a query of OpenTask rows in ORDER, with the filters in `values` and their values."""
    query = select(OpenTask).order_by(*inbox.ORDER) if every else inbox.my_tasks(user, scope)
    if not values:
        return query
    return query.where(*(inbox.FILTERS[name]() for name in values)).params(values)


def _my_task(task_id: str) -> OpenTask:
    # Tasks are not revealed to people they are not offered to.
    return units.visible_task(db.session(), auth.current_user(), task_id)


@blp.route("/<string:task_id>")
class TaskResource(MethodView):
    @blp.response(200, TaskOut)
    def get(self, task_id):
        """A task with its form (JSON Schema, decision block included for approvals) and data."""
        task = _my_task(task_id)
        return views.task(db.session(), task, full=True)


@blp.route("/<string:task_id>/claim")
class ClaimResource(MethodView):
    @blp.response(200, TaskOut)
    def post(self, task_id):
        """Take a task offered to a group, so nobody else works on it."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            task = units.claim(s, user, task_id)
            return views.task(s, task)


@blp.route("/<string:task_id>/release")
class ReleaseResource(MethodView):
    @blp.response(200, TaskOut)
    def post(self, task_id):
        """Give a claimed task back to its candidates."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            task = units.claim(s, user, task_id, release=True)
            return views.task(s, task)


@blp.route("/<string:task_id>/complete")
class CompleteResource(MethodView):
    @blp.arguments(CompleteTask)
    @blp.response(200, InstanceOut)
    @blp.doc(parameters=[PREFER_MINIMAL])
    def post(self, body, task_id):
        """Complete a task with form data; 422 names the failing field, 409 if already completed."""
        user = auth.current_user()
        minimal = wants_minimal()
        with db.unit_of_work() as s:
            outcome = units.complete(s, user, task_id, body.get("data") or {})
            answer = views.instance(s, outcome.instance, with_history=not minimal, one_time=outcome.one_time,
                                    history_limit=views.RECENT_HISTORY)
        return (answer, 200, APPLIED_MINIMAL) if minimal else answer


@blp.route("/<string:task_id>/delegate")
class DelegateResource(MethodView):
    @blp.arguments(ReassignTask)
    @blp.response(200, TaskOut)
    def post(self, body, task_id):
        """Hand my task to a colleague who may do it as well (one of its candidates), with a
        reason; audited, and shown on the task (issue 17, R-WF-2)."""
        user = auth.current_user()
        units.visible_task(db.session(), user, task_id)
        with db.unit_of_work() as s:
            task = units.delegate(s, user, task_id, body["username"], body["reason"])
            return views.task(s, task)


@blp.route("/<string:task_id>/reassign")
class ReassignResource(MethodView):
    @blp.arguments(ReassignTask)
    @blp.response(200, TaskOut)
    def post(self, body, task_id):
        """Give a task to someone else: system and platform administrators, or the department
        administrator of the instance's department (R-ACC-3); the reason is audited."""
        user = auth.current_user()
        s = db.session()
        task = units.open_task(s, task_id)
        instance = s.get(ProcessInstance, task.instance_id)
        policy.authorize(user, "reassign", "process_instance", instance, hide=True,
                         message=_("Task not found or already completed."))
        with db.unit_of_work() as s:
            task = units.reassign(s, user, task_id, body["username"], body["reason"])
            return views.task(s, task)
