"""Escalation by notice, shared by fault_report.bpmn and feedback.bpmn (R-OPS-3, R-SUP-2).

A non-interrupting boundary timer on an overdue handling task calls `notify_escalation`: the task
stays with whoever handles it (and is flagged overdue), and the group that supervises is told.
"""
from __future__ import annotations

from sqlalchemy import select

from .. import audit
from ..authority import SENDS_NOTICES
from ..models import Notification, User, UserGroup
from ..services import ServiceFailure, current_unit, service


@service("notify_escalation", authority=SENDS_NOTICES)
def notify_escalation(params: dict, context: dict) -> dict:
    """Put an "escalation" notice about this instance in the inbox of every active group member."""
    unit = current_unit.get()
    s = unit.session
    group = str(params.get("group") or "").strip()
    subject = str(params.get("subject") or "").strip()[:255]
    if not group or not subject:
        raise ServiceFailure("notify_escalation needs a group and a subject")
    members = list(s.scalars(select(User.id).join(UserGroup, UserGroup.user_id == User.id)
                             .where(UserGroup.group_code == group, User.active.is_(True)).order_by(User.id)))
    for user_id in members:
        s.add(Notification(user_id=user_id, kind="escalation", title=subject, instance_id=unit.instance_id))
    audit.record(s, "escalated", "process_instance", unit.instance_id,
                 detail={"group": group, "subject": subject, "notified": len(members)})
    return {"group": group, "notified": len(members)}
