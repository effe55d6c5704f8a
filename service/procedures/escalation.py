"""Escalation by notice, shared by the built-in procedures (R-WF-2, R-OPS-3, R-SUP-2).

A non-interrupting boundary timer on an overdue task calls `notify_escalation`: the task stays
with whoever handles it (and is flagged overdue), and someone above is told — the group that
supervises (fault reports, feedback), or the superior of the reviewer of an approval step
(service/hierarchy.py), who can then press for a decision.
"""
from __future__ import annotations

from sqlalchemy import select

from .. import audit
from ..authority import SENDS_NOTICES
from ..hierarchy import superiors_of_task
from ..models import Notification, User, UserGroup
from ..services import ServiceFailure, current_unit, service


@service("notify_escalation", authority=SENDS_NOTICES)
def notify_escalation(params: dict, context: dict) -> dict:
    """Put an "escalation" notice about this instance in the inbox of every active member of
    `group`, or of the superiors of whoever may do the open user task `superior_of` (an element id)."""
    unit = current_unit.get()
    s = unit.session
    group = str(params.get("group") or "").strip()
    superior_of = str(params.get("superior_of") or "").strip()
    subject = str(params.get("subject") or "").strip()[:255]
    if not (group or superior_of) or not subject:
        raise ServiceFailure("notify_escalation needs a group or superior_of, and a subject")
    people, groups = set(), {group} if group else set()
    if superior_of:
        found = superiors_of_task(s, unit.instance_id, superior_of)
        people, groups = found.users, groups | found.groups
    if groups:
        people |= set(s.scalars(select(User.id).join(UserGroup, UserGroup.user_id == User.id)
                                .where(UserGroup.group_code.in_(groups), User.active.is_(True))))
    for user_id in sorted(people):
        s.add(Notification(user_id=user_id, kind="escalation", title=subject, instance_id=unit.instance_id))
    audit.record(s, "escalated", "process_instance", unit.instance_id,
                 detail={"group": group, "superior_of": superior_of, "groups": sorted(groups), "users": sorted(people),
                         "subject": subject, "notified": len(people)})
    return {"group": group, "superior_of": superior_of, "notified": len(people)}
