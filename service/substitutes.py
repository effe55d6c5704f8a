"""Who acts for whom (issue 17, R-WF-2): a substitute for a period, and the notes a task page shows.

A person going away names a colleague of their department and a period (by engine.clock). A task
that opens during it naming that person (a department head's review, say) is offered to the
substitute as well; tasks offered to a whole group need no substitute, the group goes on. Handing
one task to a colleague is `instances.delegate`; both leave an audit record, which is also what
the task page reads to say "由 张三 委托" or "代 李四 办理".
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, Invalid, NotFound
from .models import AuditEvent, User, utcnow
from .workspace_models import Substitution

MAX_DAYS = 366  # a longer absence is a change of post (R-ACC-4), not a substitution
# Audit actions about one task that the task page tells: handed over, offered to a substitute.
TASK_NOTES = ("task_delegated", "task_offered_to_substitute")


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(_("The substitution is invalid."), [{"field": field, "message": message}])


def name(s: Session, user: User, username: str, starts_at: datetime | None, ends_at: datetime | None,
         reason: str) -> Substitution:
    """`user` names a colleague of their department to receive the tasks offered to them from
    `starts_at` to `ends_at`; periods of one person do not overlap."""
    reason = (reason or "").strip()
    substitute = s.scalar(select(User).where(User.username == (username or "").strip(), User.active.is_(True)))
    if substitute is None or substitute.department_id != user.department_id:
        raise _invalid("substitute", _("choose an active colleague of your department"))
    if substitute.id == user.id:
        raise _invalid("substitute", _("choose someone other than yourself"))
    if starts_at is None:
        raise _invalid("starts_at", _("required"))
    if ends_at is None:
        raise _invalid("ends_at", _("required"))
    if ends_at <= starts_at:
        raise _invalid("ends_at", _("must be after the start date"))
    if ends_at <= utcnow():
        raise _invalid("ends_at", _("must be in the future"))
    if (ends_at - starts_at).days > MAX_DAYS:
        raise _invalid("ends_at", _("at most %(days)s days", days=MAX_DAYS))
    if not reason:
        raise _invalid("reason", _("required"))
    overlapping = s.scalar(select(Substitution.id).where(
        Substitution.user_id == user.id, Substitution.starts_at < ends_at, Substitution.ends_at > starts_at))
    if overlapping is not None:
        raise Conflict(_("You have named a substitute for part of this period already; end that one first."))
    row = Substitution(user_id=user.id, substitute_id=substitute.id, starts_at=starts_at, ends_at=ends_at,
                       reason=reason[:2000], created_by=user.id)
    s.add(row)
    s.flush()
    audit.record(s, "substitute_named", "user", user.id, actor_id=user.id, detail={
        "substitution": row.id, "substitute": substitute.id, "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(), "reason": row.reason})
    return row


def end(s: Session, user: User, substitution_id: int) -> Substitution:
    """End a substitution now (back early), or drop one not begun; the tasks already offered stay offered."""
    row = s.get(Substitution, substitution_id)
    if row is None or row.user_id != user.id:
        raise NotFound(_("Substitution not found."))
    now = utcnow()
    if row.ends_at <= now:
        raise Conflict(_("This substitution has ended already."))
    row.ends_at = max(now, row.starts_at)
    audit.record(s, "substitute_ended", "user", user.id, actor_id=user.id, detail={"substitution": row.id})
    return row


def of(s: Session, user: User) -> list[Substitution]:
    """The user's substitutions not yet over, soonest first."""
    return list(s.scalars(select(Substitution).where(Substitution.user_id == user.id, Substitution.ends_at > utcnow())
                          .order_by(Substitution.starts_at)))


def covering(s: Session, user_ids: set[int]) -> dict[int, int]:
    """Substitute of each of these people who is away now (user id -> substitute's id)."""
    if not user_ids:
        return {}
    now = utcnow()
    rows = s.execute(select(Substitution.user_id, Substitution.substitute_id)
                     .join(User, User.id == Substitution.substitute_id)
                     .where(Substitution.user_id.in_(user_ids), Substitution.starts_at <= now,
                            Substitution.ends_at > now, User.active.is_(True))).all()
    return dict(rows)


@dataclass(frozen=True)
class Note:
    """One line about who acts for whom on a task."""

    action: str  # one of TASK_NOTES
    by: str  # who handed it over / who is away
    to: str  # who received it / the substitute
    reason: str
    at: datetime


def notes(s: Session, task_id: str) -> list[Note]:
    """What happened to who does this task: hand-overs and substitutes, oldest first."""
    events = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(TASK_NOTES), AuditEvent.object_type == "task",
                                                AuditEvent.object_id == str(task_id)).order_by(AuditEvent.id)).all()
    ids = {e.detail.get(k) for e in events for k in ("from", "to")} - {None}
    names = dict(s.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all()) if ids else {}
    return [Note(e.action, names.get(e.detail.get("from"), ""), names.get(e.detail.get("to"), ""),
                 e.detail.get("reason") or "", e.at) for e in events]
