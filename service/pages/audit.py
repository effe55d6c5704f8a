"""The audit log for auditors (R-SEC-4, R-SEC-8, issue 15): the log with its filters and exports,
the anomaly review's findings and the monthly access review. The same service functions as the
REST API (service/audit_log.py, service/anomaly.py) decide and audit every read."""
from __future__ import annotations

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import anomaly, audit_log, db, exports, policy
from ..bounds import page_arg
from ..errors import Invalid
from . import signed_in

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50
FILTER_NAMES = ("person", "action", "object_type", "object_id", "department", "since", "until", "address", "q")


@bp.app_template_global()
def may_audit() -> bool:
    """The Audit entry of the menu: auditors, and supervisors for the monthly access review."""
    user = getattr(g, "user", None)
    return user is not None and policy.allows(user, "read", "access_review")


@bp.app_template_global()
def may_audit_log() -> bool:
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
                    headers={"Content-Disposition": exports.disposition(f"audit-log.{fmt}")})


# --- the anomaly review ----------------------------------------------------------------------------

@bp.get("/findings")
@signed_in
def findings():
    s = db.session()
    status = request.args.get("status") or None
    rule = request.args.get("rule") or None
    page = max(request.args.get("page", 1, type=page_arg), 1)
    items, total = anomaly.findings(s, g.user, status, rule, request.args.get("person") or None,
                                    (page - 1) * PAGE_SIZE, PAGE_SIZE)
    return render_template("audit_findings.html", items=items, total=total, page=page, more=total > page * PAGE_SIZE,
                           status=status, rule=rule, rules=anomaly.RULES, statuses=anomaly.STATUS_NAMES,
                           may_review=policy.allows(g.user, "review", "audit_finding"))


@bp.post("/review")
@signed_in
def review():
    try:
        with db.unit_of_work() as s:
            made = anomaly.review(s, g.user)
    except Invalid as e:
        flash(e.message, "error")
    else:
        flash(_("The review found %(n)s new findings.", n=len(made)), "success")
    return redirect(url_for(".findings"), 303)


def _finding_page(listed, evidence, errors=None, status=200):
    s = db.session()
    return render_template("audit_finding.html", item=listed, evidence=evidence, errors=errors or [],
                           departments=audit_log.departments(s), severities=anomaly.SEVERITIES,
                           may_review=policy.allows(g.user, "review", "audit_finding")), status


@bp.get("/findings/<int:finding_id>")
@signed_in
def finding(finding_id: int):
    return _finding_page(*anomaly.finding(db.session(), g.user, finding_id))


def _decide(finding_id: int, decision):
    try:
        with db.unit_of_work() as s:
            found = decision(s)
    except Invalid as e:
        listed, evidence = anomaly.finding(db.session(), g.user, finding_id)
        return _finding_page(listed, evidence, e.details or [], 422)
    flash(_("Finding %(id)s: %(status)s.", id=found.id, status=anomaly.status_name(found.status)), "success")
    return redirect(url_for(".finding", finding_id=finding_id), 303)


@bp.post("/findings/<int:finding_id>/dismiss")
@signed_in
def dismiss(finding_id: int):
    return _decide(finding_id, lambda s: anomaly.dismiss(s, g.user, finding_id, request.form.get("reason", "")))


@bp.post("/findings/<int:finding_id>/rectify")
@signed_in
def rectify(finding_id: int):
    form = request.form
    return _decide(finding_id, lambda s: anomaly.rectify(s, g.user, finding_id, form.get("department") or None,
                                                         form.get("severity", "medium"), form.get("note", "")))


@bp.post("/findings/<int:finding_id>/incident")
@signed_in
def incident(finding_id: int):
    return _decide(finding_id, lambda s: anomaly.open_incident(s, g.user, finding_id, request.form.get("note", "")))


@bp.get("/access-review")
@signed_in
def access_review():
    s = db.session()
    fmt = request.args.get("format")
    report = anomaly.access_review(s, g.user, request.args.get("month") or None)
    if fmt in exports.MIMETYPES:
        body, mimetype = exports.render(report["departments"], fmt, anomaly.ACCESS_COLUMNS)
        return Response(body, mimetype=mimetype, headers={
            "Content-Disposition": exports.disposition(f"access-review-{report['month']}.{fmt}")})
    return render_template("audit_access_review.html", report=report, columns=anomaly.ACCESS_COLUMNS,
                           sees_log=policy.allows(g.user, "read", "audit_log"))
