from __future__ import annotations

from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import auth, db, policy
from .. import instances as units
from ..errors import Forbidden, Invalid
from ..models import ProcessInstance, User
from . import views
from .blueprint import APPLIED_MINIMAL, PREFER_MINIMAL, Blueprint, wants_minimal
from .schemas import (
    CancelInstance,
    InstanceArgs,
    InstanceList,
    InstanceOut,
    RetryInstance,
    StartInstance,
    WithdrawInstance,
)

PREFIX = "/process-instances"
blp = Blueprint("process_instances", __name__, description="Running and finished process instances")


@blp.route("")
class Instances(MethodView):
    @blp.arguments(InstanceArgs, location="query")
    @blp.response(200, InstanceList)
    def get(self, args):
        """Instances the caller may see; filters: state, process_key, started_by, business_key."""
        user = auth.current_user()
        s = db.session()
        query = select(ProcessInstance).where(policy.scope_filter(user, "read", "process_instance"))
        if args.get("state"):
            query = query.where(ProcessInstance.state == args["state"])
        if args.get("process_key"):
            query = query.where(ProcessInstance.process_key == args["process_key"])
        if args.get("business_key"):
            query = query.where(ProcessInstance.business_key == args["business_key"])
        if args.get("started_by"):
            query = query.join(User, User.id == ProcessInstance.started_by).where(User.username == args["started_by"])
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.scalars(query.order_by(ProcessInstance.id.desc()).limit(args["limit"]).offset(args["offset"])).all()
        return {"items": [views.instance(s, r, with_history=False) for r in rows], "total": total}

    @blp.arguments(StartInstance)
    @blp.response(201, InstanceOut)
    @blp.doc(parameters=[PREFER_MINIMAL])
    def post(self, body):
        """Start the latest version of a process."""
        user = auth.current_user()
        minimal = wants_minimal()
        with db.unit_of_work() as s:
            outcome = units.start(s, user, body["process_key"], body.get("business_key"), body.get("data"))
            answer = views.instance(s, outcome.instance, with_history=not minimal, one_time=outcome.one_time,
                                    history_limit=views.RECENT_HISTORY)
        return (answer, 201, APPLIED_MINIMAL) if minimal else answer


def _visible_instance(instance_id: int) -> ProcessInstance:
    return units.visible_instance(db.session(), auth.current_user(), instance_id)


@blp.route("/<int:instance_id>")
class InstanceResource(MethodView):
    @blp.response(200, InstanceOut)
    def get(self, instance_id):
        """State, active and completed elements, incidents and the history of steps."""
        row = _visible_instance(instance_id)
        return views.instance(db.session(), row)


@blp.route("/<int:instance_id>/cancel")
class CancelResource(MethodView):
    @blp.arguments(CancelInstance)
    @blp.response(200, InstanceOut)
    def post(self, body, instance_id):
        """Cancel: the initiator while nobody has decided yet, or an administrator with a reason."""
        row = _visible_instance(instance_id)
        user = auth.current_user()
        s = db.session()
        if policy.widest(user, "cancel", "process_instance") != policy.ALL:
            decided = views.instance(s, row)["history"]
            if row.started_by != user.id or any(h["decision"] for h in decided):
                raise Forbidden(_("Only the initiator (before any decision) or an administrator may cancel."))
        elif not (body.get("reason") or "").strip():
            raise Invalid(_("A reason is required."), [{"field": "reason", "message": _("required")}])
        with db.unit_of_work() as s:
            outcome = units.cancel(s, user, instance_id, body.get("reason"))
            return views.instance(s, outcome.instance)


@blp.route("/<int:instance_id>/withdraw")
class WithdrawResource(MethodView):
    @blp.arguments(WithdrawInstance)
    @blp.response(200, InstanceOut)
    def post(self, body, instance_id):
        """The initiator withdraws their own request, with a reason, while no reviewer has decided
        on what they last submitted (issue 17, R-WF-2); it ends as `withdrawn`, audited."""
        row = _visible_instance(instance_id)
        policy.authorize(auth.current_user(), "cancel", "process_instance", row)
        with db.unit_of_work() as s:
            outcome = units.withdraw(s, auth.current_user(), instance_id, body["reason"])
            return views.instance(s, outcome.instance)


@blp.route("/<int:instance_id>/retry")
class RetryResource(MethodView):
    @blp.arguments(RetryInstance)
    @blp.response(200, InstanceOut)
    def post(self, body, instance_id):
        """Run a failed step again (administrators; the reason is audited). `data` corrects the instance's data first."""
        _visible_instance(instance_id)
        user = policy.authorize(auth.current_user(), "retry", "process_instance")
        with db.unit_of_work() as s:
            outcome = units.retry(s, user, instance_id, body["reason"], body.get("data"))
            return views.instance(s, outcome.instance)
