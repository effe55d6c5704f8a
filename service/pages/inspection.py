"""The supervision group's inspection pages (R-SUP-1): departments, accounts, document metadata and
process execution, read-only; every page view is an audited read (service/inspection.py)."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request

from .. import db, inspection
from ..documents.models import LEVELS
from ..errors import Invalid
from . import signed_in

bp = Blueprint("inspect", __name__, url_prefix="/inspect")


@bp.app_template_global()
def may_inspect() -> bool:
    user = getattr(g, "user", None)
    return user is not None and inspection.may_inspect(user)


def _page(view: str, read, **context):
    """The view's rows, or the page with the filter's error (422)."""
    try:
        with db.unit_of_work() as s:
            rows = read(s)
        errors, status = [], 200
    except Invalid as e:
        rows, errors, status = [], e.details or [{"field": "department", "message": e.message}], 422
    departments = [] if view == "departments" else _departments_for_filter()
    return render_template("inspection.html", view=view, rows=rows, errors=errors, departments=departments,
                           levels=LEVELS, args=request.args, dormant_days=inspection.DORMANT_AFTER.days,
                           **context), status


def _departments_for_filter():
    from sqlalchemy import select

    from ..models import Department
    return db.session().execute(select(Department.code, Department.name).order_by(Department.code)).all()


@bp.get("")
@signed_in
def index():
    return _page("departments", lambda s: inspection.departments(s, g.user))


@bp.get("/accounts")
@signed_in
def accounts():
    dormant = request.args.get("dormant") == "1"
    return _page("accounts", lambda s: inspection.accounts(s, g.user, request.args.get("department"), dormant))


@bp.get("/documents")
@signed_in
def documents():
    return _page("documents", lambda s: inspection.documents(s, g.user, request.args.get("department"),
                                                             request.args.get("level")))


@bp.get("/documents/<int:document_id>")
@signed_in
def document(document_id: int):
    return _page("document", lambda s: [inspection.document(s, g.user, document_id)])


@bp.get("/processes")
@signed_in
def processes():
    return _page("processes", lambda s: inspection.processes(s, g.user, request.args.get("department")))
