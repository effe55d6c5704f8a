"""The maintenance page for system administrators (R-OPS-1, R-SEC-5): the scheduled jobs, the
backups with their verification, "back up now" and "verify", and the daily checks, run on view."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import func, select

from .. import audit, backup, db, maintenance
from ..errors import NotFound
from ..models import ScheduledJob
from . import signed_in

log = logging.getLogger("inkless.maintenance")
bp = Blueprint("maintenance", __name__, url_prefix="/maintenance")

JOB_KINDS = {
    "archive": N_("Archive documents past the policy age"),
    "audit": N_("Archive audit events past retention and sign a checkpoint of the audit chain"),
    "backup": N_("Back up, verify the backup, remove old backups, run the daily checks"),
    "digest": N_("Supervisors' daily digest"),
    "snapshots": N_("Refresh the indicator snapshots"),
    "start": N_("Start a process on its timer"),
}
PROBLEMS = {
    "unreadable": N_("the manifest cannot be read"),
    "signature": N_("the manifest's signature does not match: it was edited, or the secret key differs"),
    "missing": N_("the file is missing"),
    "checksum": N_("the checksum does not match: the file was changed"),
    "unlisted": N_("the file is not in the manifest"),
    "count": N_("the trial restore has a different number of rows"),
    "audit_chain": N_("the audit chain of the trial restore is broken"),
    "audit_checkpoint": N_("the backup's audit checkpoint is missing or its signature does not match"),
    "restore_failed": N_("the trial restore failed"),
    "keys_missing": N_("the keys needed to open the backup are not here"),
}


def _system_admin() -> None:
    maintenance.authorize(g.user)


@bp.get("")
@signed_in
def index():
    _system_admin()
    s = db.session()
    app = current_app._get_current_object()
    pending = dict(s.execute(select(ScheduledJob.kind, func.count()).where(ScheduledJob.kind.in_(("timer", "deadline")))
                             .group_by(ScheduledJob.kind)).all())
    return render_template("maintenance.html", checks=maintenance.checks(app, s), jobs=maintenance.jobs(s),
                           kinds=JOB_KINDS, pending=pending, backups=backup.all_backups(app), problems=PROBLEMS,
                           location=backup.location(app), keep=app.config["INKLESS"].backup_keep)


@bp.post("/backups")
@signed_in
def create():
    _system_admin()
    try:
        made, record = maintenance.run_backup(current_app._get_current_object())
    except Exception as e:  # noqa: BLE001 - a full disk or a missing mount is shown, not a 500
        log.exception("backup from the maintenance page failed")
        with db.unit_of_work() as s:
            audit.record(s, "backup_failed", "backup", None, actor_id=g.user.id, detail={"error": str(e)[:500]})
        flash(_("The backup failed: %(error)s", error=str(e)), "error")
        return redirect(url_for(".index"), 303)
    with db.unit_of_work() as s:
        audit.record(s, "backup_created", "backup", made.id, actor_id=g.user.id,
                     detail={"rows": made.rows, "bytes": made.size, "verified": record["ok"]})
    _flash(made.id, record)
    return redirect(url_for(".index"), 303)


@bp.post("/backups/<backup_id>/verify")
@signed_in
def verify(backup_id: str):
    _system_admin()
    app = current_app._get_current_object()
    try:
        found = backup.get(app, backup_id)
    except backup.BackupError:
        raise NotFound(_("There is no backup %(id)s.", id=backup_id)) from None
    record = backup.verify(app, found)
    with db.unit_of_work() as s:
        audit.record(s, "backup_verified", "backup", backup_id, actor_id=g.user.id,
                     detail={"ok": record["ok"], "problems": [backup.problem_text(p) for p in record["problems"]]})
    _flash(backup_id, record)
    return redirect(url_for(".index"), 303)


def _flash(backup_id: str, record: dict) -> None:
    if record["ok"]:
        flash(_("Backup %(id)s is complete and verified.", id=backup_id), "success")
    else:
        flash(_("Backup %(id)s failed verification; see the list below.", id=backup_id), "error")
