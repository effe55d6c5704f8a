from __future__ import annotations

from flask.views import MethodView

from .. import auth, db, policy
from .. import instances as units
from . import views
from .blueprint import Blueprint
from .schemas import InstanceOut, Message

PREFIX = "/messages"
blp = Blueprint("messages", __name__, description="Messages to waiting instances")


@blp.route("")
class Messages(MethodView):
    @blp.arguments(Message)
    @blp.response(200, InstanceOut)
    def post(self, body):
        """Deliver a message (name, optional business_key / correlation values, payload) to the instance waiting for it."""
        user = policy.authorize(auth.current_user(), "deliver", "message")
        with db.unit_of_work() as s:
            outcome = units.deliver_message(s, user, body["name"], body.get("payload"),
                                            business_key=body.get("business_key"),
                                            correlation=body.get("correlation"))
            return views.instance(s, outcome.instance, history_limit=views.RECENT_HISTORY)
