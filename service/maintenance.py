"""The maintenance plan (R-OPS-1, R-SEC-5): the nightly backup job and the daily checks.

The job (kind "backup", 02:30 platform time) backs up, verifies the new backup, prunes old ones
and runs the daily checks; whatever fails is told to every system administrator in their inbox.
Its row is moved to the next night and committed before the slow work, so a second worker never
finds it due; a worker killed half-way loses that night's backup, which the "last backup" check
then reports.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from engine import clock

from . import audit_chain, backup, policy
from .models import Notification, ScheduledJob, User

log = logging.getLogger("inkless.maintenance")
MAX_BACKUP_AGE = timedelta(hours=26)
LOW_DISK_BYTES = 1024**3
LOW_DISK_SHARE = 0.10

CHECK_NAMES = {
    "database": N_("Database reachable"),
    "audit_chain": N_("Audit chain verifies"),
    "disk_data": N_("Free space in the data directory"),
    "disk_backups": N_("Free space in the backup location"),
    "last_backup": N_("Last backup less than 26 hours old and verified"),
    "disk_copies": N_("Free space in the backup copy location"),
    "last_copy": N_("Last backup copy less than 26 hours old and verified there"),
}


@dataclass
class Check:
    code: str
    ok: bool
    detail: str

    @property
    def name(self) -> str:
        return str(CHECK_NAMES[self.code])


def _disk(code: str, path: Path) -> Check:
    if path.exists() and not path.is_dir():
        return Check(code, False, f"{path}: not a directory")
    where = path
    while not where.exists():  # not created yet (no backup so far): the disk it will be on
        where = where.parent
    usage = shutil.disk_usage(where)
    ok = usage.free >= LOW_DISK_BYTES and usage.free >= usage.total * LOW_DISK_SHARE
    return Check(code, ok, f"{path}: {usage.free / 1024**3:.1f} GiB / {usage.total / 1024**3:.1f} GiB")


def authorize(user: User) -> None:
    """The maintenance plan and backups are the system administrators' (`maintain platform`)."""
    policy.authorize(user, "maintain", "platform", message=_("Only system administrators can see the maintenance plan."))


def checks(app: Flask, s: Session) -> list[Check]:
    out = []
    try:
        s.execute(text("SELECT 1"))
        out.append(Check("database", True, app.extensions["inkless.engine"].dialect.name))
    except Exception as e:  # noqa: BLE001 - an unreachable database is the finding
        s.rollback()
        return [Check("database", False, f"{type(e).__name__}: {e}"[:300])]
    verdict = audit_chain.verify_platform(app, s)
    out.append(Check("audit_chain", verdict.ok, verdict.message()))
    out.append(_disk("disk_data", Path(app.config["INKLESS"].data_dir)))
    out.append(_disk("disk_backups", backup.location(app)))
    out.append(_last_backup(app))
    if backup.location(app, copy=True) is not None:
        out.append(_disk("disk_copies", backup.location(app, copy=True)))
        out.append(_last_backup(app, copy=True))
    return out


def _last_backup(app: Flask, copy: bool = False) -> Check:
    code = "last_copy" if copy else "last_backup"
    latest = next(iter(backup.all_backups(app, copy)), None)
    if latest is None or latest.created_at is None:
        return Check(code, False, "")
    age = clock.now() - latest.created_at
    verified = bool(latest.verification and latest.verification["ok"])
    return Check(code, age < MAX_BACKUP_AGE and verified, latest.id)


def run_backup(app: Flask, progress: backup.Progress = backup.QUIET) -> tuple[backup.Backup, dict]:
    """Back up now, verify, copy to the copy location and verify the copy there, prune: the job's
    work and the page's "back up now". The record is the backup's verification, with the copy's
    under "copy" when a copy location is configured."""
    made = backup.create(app, progress)
    record = backup.verify(app, made, progress)
    if record["ok"]:
        copied = backup.copy_out(app, made, progress)
        if copied is not None:
            record = dict(record, copy=dict(backup.verify(app, copied, progress), id=copied.id))
        backup.prune(app)  # never let a bad new backup push out a good old one
    return made, record


def fire(s: Session, job: ScheduledJob) -> None:
    """The nightly job (called by the scheduler with the job claimed)."""
    from .scheduler import DAILY_JOBS, next_daily

    job.due_at = next_daily(clock.now(), DAILY_JOBS["backup"][1])
    job.fired += 1
    s.commit()  # moved on first: no other worker finds it due while the backup runs
    app = current_app._get_current_object()
    failures: list[str] = []
    try:
        made, record = run_backup(app)
        for where, verdict in (("", record), (" (copy)", record.get("copy"))):
            if verdict is not None and not verdict["ok"]:
                failures.append(f"{made.id}{where}: " + "; ".join(backup.problem_text(p) for p in verdict["problems"]))
    except Exception as e:  # noqa: BLE001 - reported to the administrators below
        log.exception("nightly backup failed")
        failures.append(f"{type(e).__name__}: {e}")
    failures += [f"{c.name}: {c.detail}" for c in checks(app, s) if not c.ok]
    job.attempts = 1 if failures else 0
    job.last_error = "\n".join(failures)[:2000] or None
    if failures:
        notify_admins(s, "; ".join(failures)[:255])


def notify_admins(s: Session, title: str) -> None:
    admins = s.scalars(select(User.id).where(User.role == "system_admin", User.active.is_(True))).all()
    if admins:
        s.execute(insert(Notification), [{"user_id": uid, "kind": "maintenance", "title": title} for uid in admins])


def jobs(s: Session) -> list[ScheduledJob]:
    """The recurring jobs, for the maintenance page (instance timers and deadlines are counted)."""
    return list(s.scalars(select(ScheduledJob).where(ScheduledJob.kind.not_in(("timer", "deadline")))
                          .order_by(ScheduledJob.due_at)))
