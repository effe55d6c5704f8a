"""The daily digest to the supervision group (R-SUP-1, R-SUP-3): once a day at 08:00 Beijing time
every active member of the `supervisor` group gets one notification counting the overdue open
tasks and the instances stopped by an incident, with the oldest few named in its body.

It is one row in `scheduled_jobs` (kind `digest`), claimed like every other job (SKIP LOCKED on
PostgreSQL, the write lock on SQLite) and moved to the next morning in the same transaction that
sends, so any number of workers send it once a day; after an outage it is sent once, not once per
missed day. `scheduler.ensure_builtin_jobs` creates the row when a scheduler starts (`inkless serve`,
`inkless worker`).
"""
from __future__ import annotations

import json
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock

from . import audit
from .models import Notification, OpenTask, ProcessInstance, ScheduledJob, User, UserGroup
from .procedures.indicators import CST
from .scheduler import DAILY_JOBS, next_daily

KIND = "digest"
REF, AT = DAILY_JOBS[KIND]  # one of the scheduler's daily jobs, at 08:00 Beijing time
LISTED = 5  # overdue tasks and incidents named in the body


def next_due(after: datetime) -> datetime:
    """The first digest time strictly after `after`."""
    return next_daily(after, AT)


def fire(s: Session, job: ScheduledJob) -> int:
    """Send today's digest and move the job to the next morning; returns how many were told."""
    now = clock.now()
    overdue = s.execute(select(OpenTask.name, OpenTask.instance_id, OpenTask.due_at)
                        .where(OpenTask.overdue.is_(True)).order_by(OpenTask.due_at, OpenTask.id)).all()
    stopped = s.execute(select(ProcessInstance.id, ProcessInstance.process_key)
                        .where(ProcessInstance.state == "error").order_by(ProcessInstance.id)).all()
    people = s.scalars(select(User.id).join(UserGroup, UserGroup.user_id == User.id)
                       .where(UserGroup.group_code == "supervisor", User.active.is_(True)).order_by(User.id)).all()
    day = now.astimezone(CST).date().isoformat()
    counts = {"day": day, "overdue": len(overdue), "incidents": len(stopped)}
    body = "\n".join([f"{name} (#{instance})" for name, instance, _due in overdue[:LISTED]]
                     + [f"#{instance} {key}" for instance, key in stopped[:LISTED]])
    for user_id in people:
        s.add(Notification(user_id=user_id, kind=KIND, title=json.dumps(counts), body=body))
    audit.record(s, "digest_sent", "digest", day, detail={**counts, "recipients": len(people)})
    job.fired += 1
    job.due_at = next_due(max(now, job.due_at))
    return len(people)


def sentence(title: str) -> str:
    """The notification's text in the reader's language, from the counts stored with it."""
    try:
        counts = json.loads(title)
        return _("Daily digest %(day)s: %(overdue)s overdue tasks, %(incidents)s instances stopped by an incident",
                 day=counts["day"], overdue=counts["overdue"], incidents=counts["incidents"])
    except (ValueError, KeyError, TypeError):
        return title

