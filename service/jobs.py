"""The job kinds of the job table and what fires each (service/scheduler.py claims the rows).

`register` fills the scheduler's registry when the app is built: the scheduler knows kinds only through this registry, so the
modules it fires (instances, documents, backups, digests, the audit chain, analytics) may import
the scheduler to queue their jobs without the scheduler importing them back.
"""
from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from engine import clock
from engine.timers import next_fire, start_timers

from . import analytics, anomaly, audit_chain, digest, evaluation, instances, maintenance
from .documents import lifecycle
from .models import OpenTask, ScheduledJob
from .scheduler import HANDLERS, STANDING_JOBS, lease, next_daily


def _instance_timers(s: Session, job: ScheduledJob) -> bool:
    lease(s, job)
    if not instances.fire_timers(s, int(job.ref)):  # its write re-syncs (or deletes) this job
        s.delete(job)
    return True


def _deadline(s: Session, job: ScheduledJob) -> bool:
    task = s.get(OpenTask, job.ref)
    s.delete(job)
    if task is not None:
        instances.mark_overdue(s, task)
    return True


def _timer_start(s: Session, job: ScheduledJob) -> bool:
    key, _, element = job.ref.partition(":")
    due, fired = job.due_at, job.fired + 1
    leased = lease(s, job)
    started = instances.start_by_timer(s, key, element)
    timer = next((t for t in start_timers(started) if t.element_id == element), None) if started else None
    nxt = next_fire(timer, due, fired) if timer else None
    # After an outage, fire once and move on to the next future period.
    while nxt is not None and nxt <= clock.now():
        nxt = next_fire(timer, nxt, fired)
    # Still this worker's lease? Else another worker took the job when it ran out, and this
    # start must not count (the caller rolls it back).
    still_mine = (ScheduledJob.id == job.id) & (ScheduledJob.due_at == leased)
    if nxt is None:
        moved = s.execute(delete(ScheduledJob).where(still_mine))
    else:
        moved = s.execute(update(ScheduledJob).where(still_mine).values(fired=fired, due_at=nxt)
                          .execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        return False
    s.expire(job)
    return True


def _archive(s: Session, job: ScheduledJob) -> bool:
    # The policy age applies to documents as of today; audited per document, actor "system".
    lifecycle.archive_due(s, None)
    job.fired += 1
    # After an outage, one run catches up every day missed: the cut-off is computed from now.
    job.due_at = next_daily(clock.now())
    return True


def _snapshots(s: Session, job: ScheduledJob) -> bool:
    # Moved on first: refresh_snapshots commits after each period (SQLite's write lock is not
    # held long), and that first commit must already tell other workers the job is not due.
    job.due_at = clock.now() + analytics.REFRESH_EVERY
    analytics.refresh_snapshots(s)
    return True


def _done_by(fire):
    def handler(s: Session, job: ScheduledJob) -> bool:
        fire(s, job)
        return True
    return handler


def register() -> None:
    """Tell the scheduler every job kind; the app calls it when it is built."""
    HANDLERS.update({
        "timer": _instance_timers, "deadline": _deadline, "start": _timer_start, "archive": _archive,
        "snapshots": _snapshots, "backup": _done_by(maintenance.fire), "digest": _done_by(digest.fire),
        "audit": _done_by(audit_chain.fire),
        "audit_review": _done_by(anomaly.fire),  # the anomaly review of the last day's audit log (R-SEC-4)
        "evaluation": _done_by(evaluation.fire),  # last month's process evaluations (R-WF-4)
    })
    STANDING_JOBS[:] = [analytics.SNAPSHOT_JOB, audit_chain.JOB]
