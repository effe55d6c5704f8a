"""Performance records (R-SUP-5): what each assessment result led to, per department — listed and
exported for the HR office. Written by publish_assessment (procedures/quarterly_assessment.py), and
the penalties by record_penalty when a rectification fails its re-check again (procedures/issue_rectification.py)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import policy
from .localtime import PLATFORM_TZ
from .models import Department, PerformanceRecord, ProcessInstance, User

# A rectification record's state, computed from its linked issue_rectification instance: open while
# it runs, closed when it completed (re-check passed), escalated once a penalty record names it.
STATES = {"open": "整改中", "closed": "已整改", "escalated": "已处罚", "unlinked": "未关联"}
KINDS = {"commendation": "表彰", "criticism": "通报批评", "rectification": "限期整改", "penalty": "处罚"}
COLUMNS = [("period", N_("Period")), ("department", N_("Department")), ("kind_name", N_("Consequence")),
           ("grade", N_("Grade")), ("score", N_("Score")), ("detail", N_("Detail")), ("deadline", N_("Deadline")),
           ("assessment_instance_id", N_("Assessment")),
           ("rectification_instance_id", N_("Rectification")), ("state_name", N_("State")), ("created_at", N_("Recorded"))]


def records(s: Session, user: User, period: str | None = None) -> list[dict]:
    policy.authorize(user, "read", "performance_record",
                     message=_("Only the supervision group and administrators may read performance records."))
    query = (select(PerformanceRecord, Department.code, Department.name)
             .join(Department, Department.id == PerformanceRecord.department_id)
             .where(policy.scope_filter(user, "read", "performance_record")))
    if period:
        query = query.where(PerformanceRecord.period == period)
    rows = s.execute(query.order_by(PerformanceRecord.period.desc(), Department.code, PerformanceRecord.id)).all()
    linked = {r.rectification_instance_id for r, _c, _n in rows if r.rectification_instance_id}
    instance_states = dict(s.execute(select(ProcessInstance.id, ProcessInstance.state)
                                     .where(ProcessInstance.id.in_(linked))).all()) if linked else {}
    penalised = {r.rectification_instance_id for r, _c, _n in rows if r.kind == "penalty"}

    def state(r) -> str | None:
        if r.kind != "rectification":
            return None
        if not r.rectification_instance_id:
            return "unlinked"
        if r.rectification_instance_id in penalised:
            return "escalated"
        return "closed" if instance_states.get(r.rectification_instance_id) == "completed" else "open"

    return [{"id": r.id, "kind": r.kind, "kind_name": KINDS.get(r.kind, r.kind), "period": r.period,
             "department": name, "department_code": code, "grade": r.grade, "score": r.score, "detail": r.detail,
             "deadline": r.deadline.astimezone(PLATFORM_TZ).strftime("%Y年%m月%d日 %H:%M") if r.deadline else None,
             "assessment_instance_id": r.assessment_instance_id,
             "rectification_instance_id": r.rectification_instance_id,
             "state": state(r), "state_name": STATES.get(state(r)) if state(r) else None,
             "created_at": r.created_at.astimezone(PLATFORM_TZ).strftime("%Y年%m月%d日 %H:%M")}
            for r, code, name in rows]
