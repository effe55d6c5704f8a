"""The audit log for auditors (R-SEC-4, R-SEC-8, issue 15): the log with its filters and exports,
the anomaly review's findings and the monthly access review. The same service functions as the
REST API (service/audit_log.py, service/anomaly.py) decide and audit every read."""
from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request

from .. import audit_log, db, policy
from ..bounds import page_arg
from ..errors import Invalid
from . import signed_in

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50
FILTER_NAMES = ("person", "action", "object_type", "object_id", "department", "since", "until", "address", "q")


@bp.app_template_global()
def may_audit() -> bool:
    user = getattr(g, "user", None)
    return user is not None and policy.allows(user, "read", "audit_log")


def _given() -> dict:
    return {name: request.args.get(name, "").strip() for name in FILTER_NAMES if request.args.get(name, "").strip()}


@bp.get("")
@signed_in
def log():
    audit_log.require_reader(g.user)
    s = db.session()
    page = max(request.args.get("page", 1, type=page_arg), 1)
    given = _given()
    errors, rows, total, status = [], [], 0, 200
    try:
        filters = audit_log.parse_filters(given)
        rows, total = audit_log.search(s, g.user, filters, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    except Invalid as e:
        errors, status = e.details or [], 422
    return render_template("audit_log.html", rows=rows, total=total, page=page, more=total > page * PAGE_SIZE,
                           given=given, errors=errors, departments=audit_log.departments(s),
                           actions=sorted(audit_log.ACTIONS.items(), key=lambda kv: kv[0])), status


@bp.get("/export")
@signed_in
def export():
    audit_log.require_reader(g.user, "export")
    fmt = request.args.get("format", "csv")
    body, mimetype = audit_log.export(db.session(), g.user, audit_log.parse_filters(_given()), fmt)
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="audit-log.{fmt}"'})
