"""The designer's studio pages: the catalogue, the modeler, the form and decision table editors, and a version page
with the diff between versions, deployment history and migration of running instances.

The modeler and form editor are scripts over the studio API (service/api/studio.py); the catalogue
and version pages are plain forms over the same service functions, so they work without script.
"""
from __future__ import annotations

import re

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import db, evaluation
from ..bounds import MAX_INT, int_arg
from ..errors import Invalid
from ..models import Department, Group, ProcessDefinition, ProcessInstance
from ..studio import catalogue, diff, migrate, modeler_strings
from . import CSP, signed_in

bp = Blueprint("studio", __name__, url_prefix="/studio")
FORM_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}\.json$")
DMN_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}\.dmn$")
# bpmn-js-properties-panel builds its two containers from HTML with a style attribute
# ("height: 100%", "flex: none; height: auto"). Exactly those two are allowed, by hash; scripts
# stay 'self' only.
MODELER_CSP = CSP + ("; style-src 'self' 'unsafe-hashes' 'sha256-nR5hyLltSjfvi2rqC26RbcredWrJvTaPA1yqPX96jpY=' "
                     "'sha256-LIWyuNLBDBQuKJLr4mOx2cFEzHX9lM0BrbfcAAzCvSU='")
# dmn-js writes three fixed style attributes: the bpmn.io logo its licence requires (the link and
# its SVG) and one of the decision table's controls. Exactly those, by hash, as above.
DMN_CSP = MODELER_CSP + (" 'sha256-r3vOsuepBDg6tz/cOusiNJ9Y4Lp9hGQTT7pzDks1Xxc=' "
                         "'sha256-CA/eh4+2R0J7cEQ14gBMtx834RIOjzMUqCM+evtrkp4=' "
                         "'sha256-t+rZHFQIkTpJNmnX0H2lJhllZ0CjvOpjODXVA30ygdM='")


@bp.app_template_global()
def may_design() -> bool:
    user = getattr(g, "user", None)
    return user is not None and catalogue.is_designer(user)


def _labels() -> dict[str, str]:
    """Words the modeler's script shows, in the page's language."""
    return {
        "task": _("Inkless task"), "performers": _("Performers"),
        "performers_help": _("e.g. initiator, dept_head, group:designer, user:zhang; empty = the lane"),
        "form": _("Form file"), "form_help": _("a JSON Schema file of this model, e.g. request.json"),
        "ui_form": _("UI schema file"), "due": _("Due within"),
        "due_help": _("in words (2 days, 4 hours) or an expression: \"P2D\" or a date field"),
        "due_expression": _("Due (duration or expression)"), "pick_due": _("(choose a duration)"),
        "unit_week": _("week(s)"), "unit_day": _("day(s)"), "unit_hour": _("hour(s)"), "unit_minute": _("minute(s)"),
        "performers_spec": _("Performers (spec)"), "pick_performer": _("(choose who)"),
        "kind_person": _("Through the instance"), "kind_group": _("Groups"), "kind_user": _("People"),
        "approval": _("Approval (decision and opinion)"), "instructions": _("Instructions"),
        "hooks": _("Scripts before and after"), "pre_script": _("Pre-script"), "post_script": _("Post-script"),
        "script": _("Script"), "service": _("Service"), "result_variable": _("Result variable"),
        "message_data": _("Message data"), "message_variable": _("Store the payload in"),
        "message_payload": _("Payload (expression)"),
        "condition": _("Condition"), "condition_help": _("a Python expression over the task data, e.g. days > 3"),
        "saved": _("Saved (draft version %s)."), "failed": _("The request failed."),
        "load_failed": _("The draft could not be loaded."), "valid": _("No problems found."),
        "problems": _("%s problem(s) found."), "no_problems": _("No problems."),
        "deployed": _("Deployed as version %s."), "bad_json": _("Not valid JSON:"),
        "try_ok": _("The run passed."), "try_failed": _("The run failed."),
        "step_form": _("%s: sample data, in the task's own form"), "complete": _("Complete %s"),
        "fix_fields": _("Correct the marked fields."),
        "new_scenario": _("(new scenario)"), "scenario_needs_name": _("Give the scenario a \"name\" first."),
        "imported": _("Diagram imported; save to keep it."), "import_failed": _("The file could not be imported:"),
        "input": _("Input"), "output": _("Output"),
        "new_table": _("A new decision table: name its input and output, add rules, then save."),
    }


@bp.get("")
@signed_in
def index():
    user = catalogue.require_designer(g.user)
    s = db.session()
    models = catalogue.models(s)
    return render_template("studio_index.html", models=models, may_edit=lambda m: catalogue.may_edit(user, m),
                           departments=s.scalars(select(Department).order_by(Department.code)).all(),
                           groups=s.scalars(select(Group).order_by(Group.code)).all())


@bp.post("")
@signed_in
def create():
    form = request.form
    starters = {"groups": form.getlist("starter_groups"), "departments": form.getlist("starter_departments")}
    fields = {"key": form.get("key", ""), "name": form.get("name", ""), "category": form.get("category", ""),
              "description": form.get("description", ""), "department": form.get("department"),
              "starters": starters}
    try:
        with db.unit_of_work() as s:
            model = catalogue.create(s, g.user, fields)
            key = model.key
    except Invalid as e:
        flash(" ".join([e.message] + [d["message"] for d in e.details or []]), "error")
        return redirect(url_for(".index"))
    return redirect(url_for(".modeler", key=key))


@bp.get("/<key>")
@signed_in
def modeler(key):
    catalogue.require_designer(g.user)
    model = catalogue.get(db.session(), key)
    g.csp = MODELER_CSP
    forms = sorted({n for n in model.draft.forms if not n.endswith(".uischema.json")} | _named_forms(model.draft.xml))
    latest = evaluation.latest(db.session(), model.key)
    return render_template("studio_modeler.html", model=model, forms=forms, tables=sorted(model.draft.dmn),
                           evaluation=evaluation.shown(latest) if latest else None,
                           labels=_labels(),
                           modeler_strings=modeler_strings.translated(), editable=catalogue.may_edit(g.user, model))


def _named_forms(xml: str) -> set[str]:
    """Form files the draft's tasks name (so a new one can be opened and written)."""
    return {n for n in catalogue.form_names(xml, ("formJsonSchemaFilename",)) if FORM_NAME.match(n)}


@bp.get("/<key>/forms/<name>")
@signed_in
def form_editor(key, name):
    catalogue.require_designer(g.user)
    model = catalogue.get(db.session(), key)
    if not FORM_NAME.match(name):
        raise Invalid(_("The form name is invalid."), [{"field": "name", "message": _(
            "use letters, digits, '_' or '-' and end with .json")}])
    ui_name = name[:-5] + ".uischema.json"
    return render_template("studio_form.html", model=model, name=name, ui_name=ui_name, labels=_labels(),
                           editable=catalogue.may_edit(g.user, model))


@bp.get("/<key>/decisions")
@signed_in
def new_table(key):
    """The modeler's "new decision table" form names the file; the editor opens it empty."""
    name = request.args.get("name", "").strip()
    if name and not name.lower().endswith(".dmn"):
        name += ".dmn"
    return redirect(url_for(".dmn_editor", key=key, name=name or "-"))


@bp.get("/<key>/decisions/<name>")
@signed_in
def dmn_editor(key, name):
    catalogue.require_designer(g.user)
    model = catalogue.get(db.session(), key)
    if not DMN_NAME.match(name):
        raise Invalid(_("The decision table name is invalid."), [{"field": "name", "message": _(
            "use letters, digits, '_' or '-' and end with .dmn")}])
    g.csp = DMN_CSP
    return render_template("studio_dmn.html", model=model, name=name, labels=_labels(),
                           modeler_strings=modeler_strings.translated(), editable=catalogue.may_edit(g.user, model))


@bp.get("/<key>/versions")
@signed_in
def versions(key):
    catalogue.require_designer(g.user)
    s = db.session()
    model = catalogue.get(s, key)
    deployed = s.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                         .order_by(ProcessDefinition.version.desc())).all()
    running = dict(s.execute(select(ProcessInstance.version, func.count()).where(
        ProcessInstance.process_key == key, ProcessInstance.state.in_(("running", "error")))
        .group_by(ProcessInstance.version)).all())
    old, new = request.args.get("from"), request.args.get("to")
    changes = None
    if deployed:
        old = old or str(deployed[-1].version)
        new = new or "draft"
        changes = diff.diff(catalogue.diagram(s, model, old), catalogue.diagram(s, model, new))
    # ?migrate_to=N: the dry run of moving the running instances to version N (nothing moves).
    to_version = request.args.get("migrate_to", type=int_arg)
    preview = migrate.migrate(s, g.user, model, to_version, dry_run=True) if to_version else None
    return render_template("studio_versions.html", model=model, deployed=deployed, running=running,
                           changes=changes, old=old, new=new, editable=catalogue.may_edit(g.user, model),
                           preview=preview)


@bp.post("/<key>/migrate")
@signed_in
def migrate_instances(key):
    to_version = request.form.get("to_version", type=int_arg)
    # The instances the dry run showed as movable; one started since is not moved unseen.
    chosen = [int(v) for v in request.form.getlist("instance_id") if v.isdigit() and int(v) <= MAX_INT]
    if not chosen:
        flash(_("No instance was chosen to move."), "error")
        return redirect(url_for(".versions", key=key))
    with db.unit_of_work() as s:
        model = catalogue.get(s, key)
        outcome = migrate.migrate(s, g.user, model, to_version, chosen)
    flash(_("%(n)s instance(s) moved to version %(v)s.", n=len(outcome["migrated"]), v=outcome["version"]), "ok")
    for refused in outcome["refused"]:
        flash(_("Instance %(id)s stays on version %(v)s: %(reason)s", id=refused["id"], v=refused["version"],
                reason=refused["reason"]), "error")
    return redirect(url_for(".versions", key=key))
