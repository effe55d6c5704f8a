from __future__ import annotations

from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, fields
from sqlalchemy import func, select

from .. import auth, db
from ..errors import NotFound
from ..models import Notification, utcnow
from ..notifications import details_of, sentence
from .blueprint import Blueprint
from .schemas import ListArgs

PREFIX = "/notifications"
blp = Blueprint("notifications", __name__, description="My in-app notifications")


class NotificationArgs(ListArgs):
    unread = fields.Boolean(load_default=False)


class NotificationOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    message = fields.String()
    context = fields.Dict(metadata={"description": "what the message says besides its step: request, key, "
                                                   "applicant, due (ISO 8601), by (who decided)"})
    instance_id = fields.Integer(allow_none=True)
    task_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    read = fields.Boolean()


class NotificationList(Schema):
    items = fields.List(fields.Nested(NotificationOut))
    total = fields.Integer()
    unread = fields.Integer()


def _out(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "message": sentence(n.kind, n.title, n.body),
            "context": details_of(n.kind, n.body), "instance_id": n.instance_id,
            "task_id": n.task_id, "created_at": n.created_at, "read": n.read_at is not None}


@blp.route("")
class Notifications(MethodView):
    @blp.arguments(NotificationArgs, location="query")
    @blp.response(200, NotificationList)
    def get(self, args):
        """My notifications, newest first, with the unread count."""
        user = auth.current_user()
        s = db.session()
        query = select(Notification).where(Notification.user_id == user.id)
        unread = s.scalar(select(func.count()).where(Notification.user_id == user.id, Notification.read_at.is_(None)))
        if args["unread"]:
            query = query.where(Notification.read_at.is_(None))
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.scalars(query.order_by(Notification.id.desc()).limit(args["limit"]).offset(args["offset"])).all()
        return {"items": [_out(n) for n in rows], "total": total, "unread": unread}


@blp.route("/<int:notification_id>/read")
class ReadNotification(MethodView):
    @blp.response(200, NotificationOut)
    def post(self, notification_id):
        """Mark one of my notifications read."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            n = s.get(Notification, notification_id)
            if n is None or n.user_id != user.id:
                raise NotFound(_("Not found."))
            n.read_at = n.read_at or utcnow()
            return _out(n)
