"""The maintenance plan as JSON, for system administrators and their monitoring (R-OPS-1, R-SEC-5):
the daily checks (run on request), the recurring jobs and the backups with their verification."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from .. import auth, backup, db, maintenance
from .blueprint import Blueprint
from .schemas import Maintenance

PREFIX = "/maintenance"
blp = Blueprint("maintenance", __name__, description="Daily checks, scheduled jobs and backups")


@blp.route("")
class MaintenanceResource(MethodView):
    @blp.response(200, Maintenance)
    def get(self):
        """The daily checks now, the recurring jobs, and the backups (newest first)."""
        maintenance.authorize(auth.current_user())
        app = current_app._get_current_object()
        s = db.session()
        return {"checks": maintenance.checks(app, s), "jobs": maintenance.jobs(s), "backups": backup.all_backups(app)}
