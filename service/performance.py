"""Performance records (R-SUP-5): what each assessment result led to, per department and, for the
people the supervisors commended, per person — listed and exported for the HR office. Written by
publish_assessment (procedures/quarterly_assessment.py), and the penalties by record_penalty when a
rectification fails its re-check again (procedures/issue_rectification.py).

Who reads what is the policy table's `read performance_record` (the supervision group and the
platform all, a department administrator their department's), and everyone the records about
themselves, with no rule: `?user=me` (or their own login name) lists them."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from . import policy
from .errors import NotFound
from .localtime import PLATFORM_TZ
from .models import Department, PerformanceRecord, ProcessInstance, User

# A rectification record's state, computed from its linked issue_rectification instance: open while
# it runs, closed when it completed (re-check passed), escalated once a penalty record names it.
STATES = {"open": "整改中", "closed": "已整改", "escalated": "已处罚", "unlinked": "未关联"}
KINDS = {"commendation": "表彰", "criticism": "通报批评", "rectification": "限期整改", "penalty": "处罚"}
COLUMNS = [("period", N_("Period")), ("department", N_("Department")), ("kind_name", N_("Consequence")),
           ("person", N_("Person")),
           ("grade", N_("Grade")), ("score", N_("Score")), ("detail", N_("Detail")), ("deadline", N_("Deadline")),
           ("assessment_instance_id", N_("Assessment")),
           ("rectification_instance_id", N_("Rectification")), ("state_name", N_("State")), ("created_at", N_("Recorded"))]


def person(s: Session, user: User, username: str) -> User:
    """The person `username` names (`me`: the caller), active or not: records stay theirs."""
    if username in ("me", user.username):
        return user
    found = s.scalar(select(User).where(User.username == username))
    if found is None:
        raise NotFound(_("No such user."))
    return found


def records(s: Session, user: User, period: str | None = None, username: str | None = None) -> list[dict]:
    """The records `user` may read, of one period and about one person (`username`, `me`) if given."""
    if username not in ("me", user.username):  # anything but one's own needs the rule (first: 403, not 404)
        policy.authorize(user, "read", "performance_record",
                         message=_("Only the supervision group and administrators may read performance records."))
    about = person(s, user, username) if username else None
    about_user = aliased(User)
    query = (select(PerformanceRecord, Department.code, Department.name, about_user.username, about_user.full_name)
             .join(Department, Department.id == PerformanceRecord.department_id)
             .outerjoin(about_user, about_user.id == PerformanceRecord.user_id)
             .where(or_(policy.scope_filter(user, "read", "performance_record"), PerformanceRecord.user_id == user.id)))
    if period:
        query = query.where(PerformanceRecord.period == period)
    if about is not None:
        query = query.where(PerformanceRecord.user_id == about.id)
    rows = s.execute(query.order_by(PerformanceRecord.period.desc(), Department.code, PerformanceRecord.id)).all()
    linked = {row[0].rectification_instance_id for row in rows if row[0].rectification_instance_id}
    instance_states = dict(s.execute(select(ProcessInstance.id, ProcessInstance.state)
                                     .where(ProcessInstance.id.in_(linked))).all()) if linked else {}
    penalised = {row[0].rectification_instance_id for row in rows if row[0].kind == "penalty"}

    def state(r) -> str | None:
        if r.kind != "rectification":
            return None
        if not r.rectification_instance_id:
            return "unlinked"
        if r.rectification_instance_id in penalised:
            return "escalated"
        return "closed" if instance_states.get(r.rectification_instance_id) == "completed" else "open"

    return [{"id": r.id, "kind": r.kind, "kind_name": KINDS.get(r.kind, r.kind), "period": r.period,
             "department": name, "department_code": code, "user": login, "person": full_name,
             "grade": r.grade, "score": r.score, "detail": r.detail,
             "deadline": r.deadline.astimezone(PLATFORM_TZ).strftime("%Y年%m月%d日 %H:%M") if r.deadline else None,
             "assessment_instance_id": r.assessment_instance_id,
             "rectification_instance_id": r.rectification_instance_id,
             "state": state(r), "state_name": STATES.get(state(r)) if state(r) else None,
             "created_at": r.created_at.astimezone(PLATFORM_TZ).strftime("%Y年%m月%d日 %H:%M")}
            for r, code, name, login, full_name in rows]
