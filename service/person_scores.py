"""Scores per person, quarterly (R-SUP-3, R-SUP-5, issue 18): each person's own figures — did they
work in processes and documents (usage), their tasks with a due date done on time (timeliness),
the requests they submitted that passed (approval pass rate) — and a score from the same weights as
the departments' reference score.

The figures are the per-person figures of `service.procedures.indicators.compute` (read through the
dashboard's snapshots, `service.analytics.figures`, so a page of scores does not recompute the
quarter); the score is `indicators.reference_score` over them with the weights the supervision
group's table gives for the quarter (`indicators.assessment_weights`). For one person usage is 1 or
0, and the security component is left out (an incident rate per hundred users means nothing for
one person), which the score function does for any component that is None.

Who sees whose score (R-SUP-5 "visible to themselves, their head and supervisors"): everyone their
own; the head of a department (its `head_id`, or a member of the office group `dept_head` for their
own department) the people of that department; the supervision group and system administrators
everyone. Asking for a department one may not see is refused (403); a person one may not see is
not found (404), as a person who does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine import clock

from . import analytics, field_formats
from .errors import Forbidden, Invalid, NotFound
from .models import Department, User
from .procedures.indicators import Period, assessment_weights, quarter, quarter_of, reference_score

SUPERVISOR_GROUP, HEAD_GROUP, SYSTEM_ADMIN = "supervisor", "dept_head", "system_admin"
# The figures of a person that a score item carries (indicators.compute's names).
COUNTS = ("tasks_completed", "instances_started", "documents_filed", "due_tasks", "on_time_tasks", "late_tasks",
          "overdue_open_tasks", "submissions", "submissions_passed", "submissions_first_pass")
RATES = ("timeliness_rate", "approval_pass_rate", "first_pass_rate")


# -- the period ---------------------------------------------------------------------------------

def period(label: str | None, now: datetime | None = None) -> Period:
    """The quarter `label` ('2026-Q4'); default the current quarter so far. The whole quarter's
    bounds, as the dashboard takes them, so both read the same snapshot."""
    now = now or clock.now()
    label = (label or "").strip()
    if not label:
        return quarter_of(now)
    try:
        chosen = quarter(label)
    except ValueError:
        message = _("'%(value)s' is not a quarter such as 2026-Q4.", value=label)
        raise Invalid(message, [{"field": "period", "message": message}]) from None
    if chosen.start > now:
        message = _("The period %(label)s has not begun yet.", label=chosen.label)
        raise Invalid(message, [{"field": "period", "message": message}])
    return chosen


def recent_quarters(count: int = 4) -> list[Period]:
    """The current quarter and the ones before it, newest first (the page's choices)."""
    return analytics.recent("quarter", count)[::-1]


# -- who sees whom ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    everyone: bool  # the supervision group, system administrators
    departments: frozenset[int]  # the departments whose people they see as their head

    def sees(self, username: str, department_id: int | None) -> bool:
        return self.everyone or username == self.username or department_id in self.departments

    def sees_department(self, department_id: int) -> bool:
        return self.everyone or department_id in self.departments


def viewer(s: Session, user: User) -> Viewer:
    """What `user` may see of the scores: the head of a department is its `head_id` (as
    hierarchy.superior takes it), or a member of `dept_head` for their own department."""
    groups = user.groups
    everyone = user.role == SYSTEM_ADMIN or SUPERVISOR_GROUP in groups
    clause = Department.head_id == user.id
    if HEAD_GROUP in groups and user.department_id is not None:
        clause = or_(clause, Department.id == user.department_id)
    headed = frozenset(s.scalars(select(Department.id).where(clause)))
    return Viewer(user.id, user.username, everyone, headed)


def may_see_others(s: Session, user: User) -> bool:
    """Whether `user` sees anybody's score beyond their own (a head, a supervisor, an administrator)."""
    v = viewer(s, user)
    return v.everyone or bool(v.departments)


# -- the scores ---------------------------------------------------------------------------------

def person_score(person: dict, weights) -> float | None:
    """A person's score 0–100 from their figures: the departments' formula and weights
    (indicators.reference_score), usage 1 or 0, no security component."""
    return reference_score({"usage_rate": 1.0 if person.get("used") else 0.0,
                            "timeliness_rate": person.get("timeliness_rate"),
                            "approval_pass_rate": person.get("approval_pass_rate"),
                            "security_incident_rate": None}, weights)


def _all_items(s: Session, chosen: Period) -> list[dict]:
    """Every person of the quarter's population with their figures and score, by department."""
    result, _computed_at = analytics.figures(s, chosen, with_people=True)
    weights = assessment_weights(s, chosen.start)
    ids = dict(s.execute(select(Department.code, Department.id)).all())
    items = []
    for code, d in result["departments"].items():
        for username, p in d.get("people", {}).items():
            items.append({
                "username": username, "full_name": p.get("full_name") or username,
                "department": code, "department_id": ids.get(code),
                "department_name": field_formats.name_of("department", code, s),
                "used": bool(p.get("used")), "usage_rate": 1.0 if p.get("used") else 0.0,
                **{k: int(p.get(k) or 0) for k in COUNTS}, **{k: p.get(k) for k in RATES},
                "score": person_score(p, weights)})
    return items


def _answer(chosen: Period, items: list[dict]) -> dict:
    return {"period": analytics.period_json(chosen), "items": items}


def scores(s: Session, user: User, label: str | None = None, department: str | None = None) -> dict:
    """The scores of the quarter `user` may see; with `department` (a code), that department's,
    which only its head, the supervision group and system administrators may ask for."""
    chosen = period(label)
    v = viewer(s, user)
    department_id = None
    if department:
        department_id = s.scalar(select(Department.id).where(Department.code == department))
        if department_id is None:
            raise NotFound(_("No such department."))
        if not v.sees_department(department_id):
            raise Forbidden(_("Only the head of a department, the supervision group and system administrators "
                              "see the scores of its people."))
    items = [i for i in _all_items(s, chosen) if v.sees(i["username"], i["department_id"])
             and (department_id is None or i["department_id"] == department_id)]
    return _answer(chosen, items)


def score_of(s: Session, user: User, username: str, label: str | None = None) -> dict:
    """One person's score for the quarter: themselves, their head, supervisors and system
    administrators; anybody else is told there is no such person (404)."""
    chosen = period(label)
    v = viewer(s, user)
    target = s.execute(select(User.username, User.department_id).where(User.username == username)).first()
    if target is None or not v.sees(target.username, target.department_id):
        raise NotFound(_("No such user."))
    for item in _all_items(s, chosen):
        if item["username"] == username:
            return {"period": analytics.period_json(chosen), **item}
    raise NotFound(_("%(name)s has no score for %(period)s: they held no account then.",
                     name=username, period=chosen.label))
