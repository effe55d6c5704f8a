"""Due work: instance timers, task deadlines, timer start events (R-WF-2, R-SEC-9, R-SUP-4) and the
platform's daily jobs (document archiving, R-DOC-3; backup and daily checks, R-SEC-5, R-OPS-1).

Every due thing is a row in `scheduled_jobs`, claimed on PostgreSQL with SELECT … FOR UPDATE
SKIP LOCKED, so several workers (`inkless worker`, and the scheduler inside `inkless serve`) never
fire the same row; on SQLite every write transaction already holds the single write lock. Jobs
that run the engine (instance timers, timer starts) run designer code, during which no lock may be
held (service/optimistic.py): `run_due` claims them in batches — one transaction moves up to
`BATCH` due rows out of reach for a lease and commits — then runs each one's unit in its own
transaction, whose write puts the row where it belongs next (or deletes it); a worker killed
mid-way leaves its rows to be fired when the lease ends. The other jobs are claimed one at a time
and done inside the transaction that claimed them: a worker killed mid-way rolls back and leaves
the row to the next. Time comes from `engine.clock`.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone

from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from engine import clock
from engine.timers import first_fire, start_timers

from . import db
from .errors import Conflict
from .localtime import PLATFORM_TZ
from .models import ProcessInstance, ScheduledJob

log = logging.getLogger("inkless.scheduler")
WORKER = f"{socket.gethostname()}:{os.getpid()}"

# Daily jobs: kind → (ref, time). One row each (unique kind + ref), fired at that platform time
# (China Standard Time, like the regulation) and then moved to the next day, in the transaction
# that claimed it: however many workers run, a day's job fires once.
DAILY_AT = time(2, 0)
DAILY_JOBS = {"archive": ("documents", DAILY_AT), "backup": ("nightly", time(2, 30)),
              "digest": ("supervisors", time(8, 0)), "audit_review": ("anomalies", time(3, 0)),
              "evaluation": ("monthly", time(4, 0))}  # daily; it evaluates last month once (R-WF-4)
# Jobs whose work is a unit that runs the engine, and how long a claim keeps one from other
# workers: longer than a step takes, short enough that a dead worker's job is soon fired again.
ENGINE_JOBS = ("timer", "start")
LEASE = timedelta(minutes=5)
# How many due engine jobs one claim leases: a transaction per batch instead of per job, few
# enough that a killed worker delays little and other workers find the rest.
BATCH = 32


def _upsert(s: Session, kind: str, ref: str, due_at: datetime | None) -> None:
    job = s.scalar(select(ScheduledJob).where(ScheduledJob.kind == kind, ScheduledJob.ref == ref))
    if due_at is None:
        if job is not None:
            s.delete(job)
        return
    if job is None:
        s.add(ScheduledJob(kind=kind, ref=ref, due_at=due_at))
    elif job.due_at != due_at:
        job.due_at = due_at


def has_timer_job(row: ProcessInstance) -> bool:
    """Whether the instance's last persist left it a timer job (`sync_instance` keeps exactly this)."""
    return row.state == "running" and row.next_timer_at is not None


def sync_instance(s: Session, row: ProcessInstance, had_job: bool = True) -> None:
    """Keep the instance's timer job in step with its next timer (called on every persist).
    `had_job` False (from `has_timer_job` before the step) skips looking for a job that cannot exist."""
    due = row.next_timer_at if row.state == "running" else None
    if due is None and not had_job:
        return
    _upsert(s, "timer", str(row.id), due)


def sync_deadline(s: Session, task_id: str, due_at: datetime | None) -> None:
    _upsert(s, "deadline", task_id, due_at)


def drop_deadlines(s: Session, task_ids) -> None:
    if task_ids:
        s.execute(delete(ScheduledJob).where(ScheduledJob.kind == "deadline", ScheduledJob.ref.in_(list(task_ids))))


def schedule_start_timers(s: Session, key: str, process) -> None:
    """On deploy: a timer start event of the newest version replaces the older version's schedule."""
    s.execute(delete(ScheduledJob).where(ScheduledJob.kind == "start", ScheduledJob.ref.like(f"{key}:%")))
    for timer in start_timers(process):
        due = first_fire(timer)
        if due is not None:
            s.add(ScheduledJob(kind="start", ref=f"{key}:{timer.element_id}", due_at=due))


def next_daily(after: datetime, at: time = DAILY_AT) -> datetime:
    """The first `at` (platform time) strictly after `after`, in UTC."""
    local = after.astimezone(PLATFORM_TZ)
    due = datetime.combine(local.date(), at, tzinfo=PLATFORM_TZ)
    if due <= local:
        due += timedelta(days=1)
    return due.astimezone(timezone.utc)


def ensure_daily_jobs(s: Session) -> None:
    """Schedule each daily job that has no row yet (on `inkless init` and when a scheduler starts;
    an existing row keeps its time)."""
    for kind, (ref, at) in DAILY_JOBS.items():
        ensure_job(s, kind, ref, next_daily(clock.now(), at))


def _due(now: datetime, skip: set[int]):
    query = select(ScheduledJob).where(ScheduledJob.due_at <= now).order_by(ScheduledJob.due_at, ScheduledJob.id)
    return query.where(ScheduledJob.id.not_in(skip)) if skip else query


def _locked(s: Session, query):
    return query.with_for_update(skip_locked=True) if s.bind.dialect.name == "postgresql" else query


def _claim(s: Session, now: datetime, skip: set[int]) -> ScheduledJob | None:
    """One due job that is done in the claiming transaction."""
    return s.scalar(_locked(s, _due(now, skip).where(ScheduledJob.kind.not_in(ENGINE_JOBS)).limit(1)))


def _lease_batch(s: Session, now: datetime, skip: set[int]) -> list[tuple[int, datetime]]:
    """Lease up to BATCH due engine jobs in one transaction: (id, lease end) of each."""
    jobs = list(s.scalars(_locked(s, _due(now, skip).where(ScheduledJob.kind.in_(ENGINE_JOBS)).limit(BATCH))))
    until = now + LEASE
    for job in jobs:
        job.due_at = until
    s.commit()
    return [(job.id, until) for job in jobs]


def run_due(app: Flask, limit: int = 1000) -> int:
    """Fire up to `limit` jobs due now; returns how many fired."""
    fired = 0
    skip: set[int] = set()
    factory = app.extensions["inkless.db"]
    with app.test_request_context("/scheduler"):
        while fired < limit:
            s = factory()
            try:
                leased = _lease_batch(s, clock.now(), skip)
            except OperationalError as e:  # lock timeouts: try again on the next round
                s.rollback()
                log.warning("scheduler: %s", e.orig)
                break
            finally:
                s.close()
            if not leased:
                break
            for job_id, until in leased:
                fired += _run_one(factory, skip, job_id, until)
        while fired < limit:
            outcome = _run_one(factory, skip)
            if outcome < 0:
                break
            fired += outcome
    return fired


def seconds_to_next(app: Flask, cap: float) -> float:
    """How long until the earliest job is due (0 if one is due now), at most `cap`: a worker sleeps
    that long, so a timer due between two looks fires when it is due, not a whole interval later."""
    s = app.extensions["inkless.db"]()
    try:
        with db.reading(s):
            due = s.scalar(select(func.min(ScheduledJob.due_at)))
    except OperationalError:  # the database is away: look again after the interval
        return cap
    finally:
        s.close()
    if due is None:
        return cap
    return min(cap, max(0.0, (due - clock.now()).total_seconds()))


def _run_one(factory, skip: set[int], job_id: int | None = None, leased_until: datetime | None = None) -> int:
    """Fire one job in its own transaction: a leased engine job by id, else the next other due job.
    1 when it fired, 0 when it did not (skipped from now on in this run), -1 when nothing is due."""
    s = factory()
    try:
        if job_id is None:
            job = _claim(s, clock.now(), skip)
            if job is None:
                s.rollback()
                return -1
        else:
            job = s.get(ScheduledJob, job_id)
            # A request re-synced the row meanwhile (or it is gone): it is due again when it says.
            if job is None or job.due_at != leased_until:
                s.rollback()
                return 0
        job_id = job.id
        try:
            done = _fire(s, job)
        except Conflict:  # a request changed the instance meanwhile: the job is due again
            s.rollback()
            skip.add(job_id)
            return 0
        except Exception as e:  # noqa: BLE001 - one bad job must not stop the others
            s.rollback()
            _record_failure(factory, job_id, e)
            skip.add(job_id)
            return 0
        if done:
            s.commit()
            return 1
        s.rollback()
        skip.add(job_id)
        return 0
    except OperationalError as e:  # lock timeouts: try again on the next round
        s.rollback()
        log.warning("scheduler: %s", e.orig)
        return -1
    finally:
        s.close()


def _record_failure(factory, job_id: int, error: Exception) -> None:
    log.exception("scheduled job %s failed", job_id, exc_info=error)
    s = factory()
    try:
        job = s.get(ScheduledJob, job_id)
        if job is not None:
            job.attempts += 1
            job.last_error = f"{type(error).__name__}: {error}"[:2000]
            # Back off so a broken job does not spin: one minute per attempt, at most an hour.
            job.due_at = clock.now() + timedelta(minutes=min(60, job.attempts))
            s.commit()
    finally:
        s.close()


# A handler gets the claimed row in the claiming transaction and answers False when its work must
# be rolled back (it lost the row to another worker).
Handler = Callable[[Session, ScheduledJob], bool]
# Job kinds and their handlers, filled by service/jobs.py when the app is built: the scheduler only
# claims rows and calls them, so nothing it fires (instances, documents, backups…) is imported here.
HANDLERS: dict[str, Handler] = {}
# What a starting scheduler makes sure exists: (kind, ref) pairs, due at once when created.
STANDING_JOBS: list[tuple[str, str]] = []


def lease(s: Session, job: ScheduledJob) -> datetime:
    """The end of this worker's lease on an engine job, taken (and committed) before its unit runs
    unless `run_due`'s batch claim already holds it."""
    if job.due_at > clock.now():
        until = job.due_at
        # Reading the row began a transaction (on SQLite with the write lock): the unit's designer
        # code must not run inside it.
        db.end_reads(s)
        return until
    job.due_at = clock.now() + LEASE
    s.commit()
    return job.due_at


def _fire(s: Session, job: ScheduledJob) -> bool:
    handler = HANDLERS.get(job.kind)
    if handler is None:
        log.warning("scheduled job %s of unknown kind %r dropped", job.id, job.kind)
        s.delete(job)
        return True
    return handler(s, job)


def ensure_job(s: Session, kind: str, ref: str, due_at: datetime) -> None:
    """Create a recurring job unless it exists; safe when several schedulers start at once."""
    if s.scalar(select(ScheduledJob.id).where(ScheduledJob.kind == kind, ScheduledJob.ref == ref)) is not None:
        return
    try:
        with s.begin_nested():
            s.add(ScheduledJob(kind=kind, ref=ref, due_at=due_at))
    except IntegrityError:
        pass  # another scheduler created it first


def ensure_builtin_jobs(app: Flask) -> None:
    """Jobs every platform has, created when a scheduler starts: the daily jobs (the supervisors'
    digest among them), the refresh of the indicator snapshots the dashboards read, and the audit
    chain's archiving and checkpoints."""
    s = app.extensions["inkless.db"]()
    try:
        ensure_daily_jobs(s)
        for kind, ref in STANDING_JOBS:
            ensure_job(s, kind, ref, clock.now())
        s.commit()
    finally:
        s.close()


def start_background(app: Flask, interval: float = 1.0):
    """APScheduler inside a process (`inkless serve` and `inkless worker`)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from .startup import tolerate

    # On full or read-only storage the server still starts (and answers 503 saying so); the jobs
    # are checked again at the next start.
    tolerate(lambda: ensure_builtin_jobs(app), "checking the built-in jobs")
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(run_due, "interval", seconds=interval, args=[app], max_instances=1, coalesce=True,
                      id="inkless-run-due")
    scheduler.start()
    return scheduler
