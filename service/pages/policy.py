"""The authorisation table, read-only, for those the table lets read it (R-ACC-3, R-SEC-7)."""
from __future__ import annotations

from flask import Blueprint, g, render_template
from flask_babel import gettext as _

from .. import policy
from . import signed_in

bp = Blueprint("policy", __name__)


@bp.get("/policy")
@signed_in
def table():
    policy.authorize(g.user, "read", "policy")
    scopes = {policy.OWN: _("own"), policy.DEPARTMENT: _("own department"), policy.ALL: _("all")}
    return render_template("policy.html", table=policy.table(), scopes=scopes)
