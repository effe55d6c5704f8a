"""The public account application (R-ACC-1): a newcomer without an account applies, gets a
tracking code once, and follows (and, when returned, amends) that one application with it.

No sign-in here. Forms carry the CSRF token like every page; each client address may submit a few
applications an hour and open tracking pages at a bounded rate (service/ratelimit.py). The domain
rules are in service/applications.py.
"""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import applications, db, designer_names, forms
from .. import instances as units
from ..api import views
from ..errors import Invalid
from ..i18n import designer_texts
from ..models import DeploymentFile
from ..ratelimit import limit
from . import diagram, fields, timeline
from .tasks import error_summary

bp = Blueprint("apply", __name__, url_prefix="/apply")

SUBMIT_LIMIT = "5 per hour"  # new applications per client address
TRACK_LIMIT = "60 per minute"  # tracking pages and amendments per client address


def _with_departments(s, schema: dict, ui: dict | None) -> tuple[dict, dict]:
    """The department field as a list of the departments that can review, not a code to type."""
    properties = dict(schema.get("properties") or {})
    ui = dict(ui or {})
    node = properties.get(applications.DEPARTMENT_FIELD)
    if isinstance(node, dict) and not node.get("readOnly"):
        node = {k: v for k, v in node.items() if k != "description"}
        node["oneOf"] = [{"const": d.code, "title": d.name} for d in applications.departments(s)]
        properties[applications.DEPARTMENT_FIELD] = node
        ui[applications.DEPARTMENT_FIELD] = {"ui:widget": "select"}
    return dict(schema, properties=properties), ui


def _form_file(s, name: str | None) -> str | None:
    if not name:
        return None
    definition = units.latest_definition(s, applications.PROCESS_KEY)
    return s.scalar(select(DeploymentFile.content).where(
        DeploymentFile.deployment_id == definition.deployment_id, DeploymentFile.name == name))


def _errors(e: Invalid) -> dict[str, str]:
    return {d["field"]: d["message"] for d in e.details or []} or {"": e.message}


@bp.route("", methods=["GET", "POST"])
@limit(SUBMIT_LIMIT, methods=["POST"])
def application():
    s = db.session()
    first = applications.first_form(s)
    ui_text = _form_file(s, first.ui_form)
    schema, ui = _with_departments(s, forms.task_schema(_form_file(s, first.form), False),
                                   designer_texts(json.loads(ui_text)) if ui_text else None)
    values: dict = {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = fields.parse(schema, request.form)
        try:
            with db.unit_of_work() as s:
                code, _row = applications.submit(s, values)
        except Invalid as e:
            errors = _errors(e)
        else:
            # Shown in this answer only (no-store): the server keeps nothing it could show again.
            return render_template("apply_done.html", code=code, link=url_for(".track", code=code, _external=True))
    form_fields = fields.build(schema, ui, values, errors)
    return render_template("apply.html", instructions=designer_names.instructions(first), form_fields=form_fields,
                           error_list=error_summary(form_fields, errors)), 422 if errors else 200


@bp.route("/track", methods=["GET", "POST"])
@limit(TRACK_LIMIT)
def track_form():
    """Type a tracking code in (instead of following the link)."""
    code = request.values.get("code", "").strip()
    if code:
        return redirect(url_for(".track", code=code))
    return render_template("apply_track_form.html")


@bp.route("/track/<string:code>", methods=["GET", "POST"])
@limit(TRACK_LIMIT)
def track(code: str):
    s = db.session()
    row = applications.find(s, code)
    task = applications.applicant_task(s, row.id)
    errors: dict[str, str] = {}
    values = (task.data or {}) if task else {}
    if request.method == "POST" and task is not None:
        shape = views.task(s, task, full=True)
        schema, _ui = _with_departments(s, shape["form"], shape["ui_schema"])
        data = fields.parse(schema, request.form)
        try:
            with db.unit_of_work() as s:
                applications.amend(s, code, data)
        except Invalid as e:
            errors = _errors(e)
            editable = {k for k, node in (schema.get("properties") or {}).items() if not node.get("readOnly")}
            values = {k: v for k, v in values.items() if k not in editable} | data
        else:
            flash(_("Thank you: your application has been sent on."), "success")
            return redirect(url_for(".track", code=code))
    s = db.session()
    row = applications.find(s, code)
    task = applications.applicant_task(s, row.id)
    form_fields = []
    if task is not None:
        shape = views.task(s, task, full=True)
        schema, ui = _with_departments(s, shape["form"], shape["ui_schema"])
        form_fields = fields.build(schema, ui, values, errors)
    story = timeline.tell(s, row)
    return render_template(
        "apply_track.html", code=code, story=story, task=task, form_fields=form_fields,
        error_list=error_summary(form_fields, errors), account=applications.created_account(s, row),
        marks=diagram.marks(s, row),
    ), 422 if errors else 200


@bp.get("/track/<string:code>/diagram.xml")
@limit(TRACK_LIMIT)
def track_diagram(code: str):
    s = db.session()
    return diagram.xml(s, applications.find(s, code))
