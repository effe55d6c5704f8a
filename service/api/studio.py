"""The designer's studio API: the process catalogue, drafts, validation, try-it, deploy, diff,
migration and zip packages. Reading needs a designer or a system administrator; changing a model
needs a designer of its department (service/studio/catalogue.py)."""
from __future__ import annotations

import json

from flask import Response, request
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from .. import auth, db, exports
from ..bounds import Integer, JsonObject, int_arg
from ..errors import Invalid, NotFound
from ..models import ProcessDefinition, ProcessInstance
from ..studio import catalogue, checks, choices, diff, migrate, package, tryit
from ..studio.catalogue import MAX_DRAFT_BYTES
from ..studio.models import ProcessModel
from .blueprint import Blueprint
from .schemas import _In

PREFIX = "/studio"
blp = Blueprint("studio", __name__, description="Process design studio")


class ModelIn(_In):
    key = fields.String(required=True, validate=validate.Length(min=1, max=128))
    name = fields.String(load_default="", validate=validate.Length(max=255))
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    category = fields.String(load_default="", validate=validate.Length(max=64))
    department = fields.String(load_default=None, allow_none=True)
    starters = JsonObject(load_default=dict)


class ModelPatch(_In):
    name = fields.String(validate=validate.Length(min=1, max=255))
    description = fields.String(validate=validate.Length(max=10000))
    category = fields.String(validate=validate.Length(max=64))
    starters = JsonObject()


class DraftIn(_In):
    version = Integer(required=True)
    xml = fields.String(load_default=None, allow_none=True)
    forms = JsonObject(load_default=None, allow_none=True, max_bytes=MAX_DRAFT_BYTES)
    dmn = JsonObject(load_default=None, allow_none=True, max_bytes=MAX_DRAFT_BYTES)
    scenarios = JsonObject(load_default=None, allow_none=True, max_bytes=MAX_DRAFT_BYTES)


class ValidateIn(_In):
    xml = fields.String(load_default=None, allow_none=True)


class TryIn(_In):
    scenario = JsonObject(load_default=None, allow_none=True)
    scenario_name = fields.String(load_default=None, allow_none=True)
    xml = fields.String(load_default=None, allow_none=True)


class DeployIn(_In):
    version = Integer(required=True)


class MigrateIn(_In):
    to_version = Integer(load_default=None, allow_none=True, minimum=1)
    instance_ids = fields.List(Integer(minimum=0), load_default=None, allow_none=True)
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "only say which instances would move and which would stay, and why; nothing changes"})


class PreviewIn(_In):
    schema = JsonObject(load_default=None, allow_none=True, metadata={"description": "a JSON Schema, or give `form`"})
    ui = JsonObject(load_default=dict)
    form = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255), metadata={
        "description": "a form file of the draft (as a task names it), instead of `schema`"})
    ui_form = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    approval = fields.Boolean(load_default=False, metadata={"description": "add the approval decision block"})
    submitted = fields.List(fields.List(fields.String(validate=validate.Length(max=100000)),
                                        validate=validate.Length(equal=2)),
                            load_default=None, allow_none=True, validate=validate.Length(max=2000), metadata={
        "description": "[name, value] pairs as the rendered form posts them: read and checked as a task page does"})


# --- answers -----------------------------------------------------------------------------------

class DraftOut(Schema):
    version = fields.Integer()
    xml = fields.String()
    forms = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "file name → JSON text"})
    dmn = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "file name → DMN XML"})
    scenarios = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={"description": "name → scenario"})


class ModelOut(Schema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    category = fields.String()
    department = fields.String()
    department_name = fields.String()
    starters = fields.Dict()
    editable = fields.Boolean(metadata={"description": "whether the caller may change it"})
    draft_version = fields.Integer()
    deployed_versions = fields.List(fields.Integer())
    updated_at = fields.String(metadata={"description": "ISO 8601"})
    draft = fields.Nested(DraftOut, metadata={"description": "with a single model, not in the catalogue"})


class ModelList(Schema):
    items = fields.List(fields.Nested(ModelOut))
    total = fields.Integer()


class SavedDraft(Schema):
    version = fields.Integer()
    updated_at = fields.String(metadata={"description": "ISO 8601"})


class Problem(Schema):
    element_id = fields.String(allow_none=True)
    file = fields.String(allow_none=True)
    message = fields.String()
    severity = fields.String()


class Validation(Schema):
    valid = fields.Boolean()
    problems = fields.List(fields.Nested(Problem))


class ReadyTask(Schema):
    element_id = fields.String()
    name = fields.String(allow_none=True)
    form = fields.String(allow_none=True)
    ui_form = fields.String(allow_none=True)
    approval = fields.Boolean()
    instructions = fields.String(allow_none=True)


class TryOut(Schema):
    ok = fields.Boolean()
    path = fields.List(fields.String(), metadata={"description": "elements passed, in order"})
    waiting = fields.List(fields.String())
    data = fields.Dict()
    failures = fields.List(fields.String())
    ready = fields.List(fields.Nested(ReadyTask))
    steps = fields.List(fields.Dict())
    flows = fields.List(fields.String(allow_none=True))
    calls = fields.List(fields.Raw())
    messages = fields.List(fields.Raw())
    failure_details = fields.List(fields.Dict())


class Deployed(Schema):
    key = fields.String()
    version = fields.Integer()
    id = fields.Integer()


class ElementRef(Schema):
    element_id = fields.String(allow_none=True)
    name = fields.String()
    type = fields.String()


class ElementChange(Schema):
    what = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)


class ChangedElement(ElementRef):
    changes = fields.List(fields.Nested(ElementChange))


class ModelDiff(Schema):
    added = fields.List(fields.Nested(ElementRef))
    removed = fields.List(fields.Nested(ElementRef))
    changed = fields.List(fields.Nested(ChangedElement))


class DiffArgs(_In):
    from_ = fields.String(data_key="from", load_default="1", metadata={"description": "a version number or 'draft'"})
    to = fields.String(load_default="draft", metadata={"description": "a version number or 'draft'"})


class RunningInstance(Schema):
    id = fields.Integer()
    version = fields.Integer()
    state = fields.String()
    active = fields.List(fields.String())


class RunningInstances(Schema):
    items = fields.List(fields.Nested(RunningInstance))


class Migrated(Schema):
    id = fields.Integer()
    from_ = fields.Integer(data_key="from", attribute="from")
    to = fields.Integer()
    at = fields.List(fields.String(), metadata={"description": "elements the instance is active at"})


class Refused(Schema):
    id = fields.Integer()
    version = fields.Integer()
    elements = fields.List(fields.String(), metadata={"description": "active elements the target version lacks"})
    at = fields.List(fields.String(), metadata={"description": "elements the instance is active at"})
    reason = fields.String()


class Migration(Schema):
    version = fields.Integer()
    dry_run = fields.Boolean(metadata={"description": "true: `migrated` lists what would move, nothing moved"})
    migrated = fields.List(fields.Nested(Migrated))
    refused = fields.List(fields.Nested(Refused))


class Performer(Schema):
    spec = fields.String(metadata={"description": "what the `performers` property stores, e.g. group:hr"})
    kind = fields.String(metadata={"description": "person, group or user"})
    name = fields.String(metadata={"description": "what the designer reads"})


class Performers(Schema):
    items = fields.List(fields.Nested(Performer))


class Preview(Schema):
    html = fields.String()
    data = fields.Dict(metadata={"description": "with `submitted`: the data read from it"})
    errors = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "with `submitted`: field → what is wrong"})


ZIP = {"type": "string", "format": "binary"}
PACKAGE_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"file": ZIP, "version": {"type": "integer", "format": "int64"}},
    "required": ["file"]}}}}


def _model_out(s, model: ProcessModel, user, with_draft: bool = False) -> dict:
    versions = s.scalars(select(ProcessDefinition.version).where(ProcessDefinition.key == model.key)
                         .order_by(ProcessDefinition.version)).all()
    out = {"key": model.key, "name": model.name, "description": model.description, "category": model.category,
           "department": model.department.code, "department_name": model.department.name,
           "starters": model.starters, "editable": catalogue.may_edit(user, model),
           "draft_version": model.draft.version, "deployed_versions": list(versions),
           "updated_at": model.draft.updated_at.isoformat()}
    if with_draft:
        out["draft"] = {"version": model.draft.version, "xml": model.draft.xml, "forms": model.draft.forms,
                        "dmn": model.draft.dmn, "scenarios": model.draft.scenarios}
    return out


def _readable(key: str) -> tuple:
    user = catalogue.require_designer(auth.current_user())
    return user, catalogue.get(db.session(), key)


@blp.route("")
class Models(MethodView):
    @blp.response(200, ModelList)
    def get(self):
        """The catalogue: every process model, with whether the caller may change it."""
        user = catalogue.require_designer(auth.current_user())
        s = db.session()
        items = [_model_out(s, m, user) for m in catalogue.models(s)]
        return {"items": items, "total": len(items)}

    @blp.arguments(ModelIn)
    @blp.response(201, ModelOut)
    def post(self, body):
        """A new model in the caller's department (an already deployed key is adopted)."""
        user = catalogue.require_designer(auth.current_user())
        with db.unit_of_work() as s:
            model = catalogue.create(s, user, body)
            return _model_out(s, model, user, with_draft=True)


@blp.route("/<string:key>")
class Model(MethodView):
    @blp.response(200, ModelOut)
    def get(self, key):
        """A model with its draft."""
        user, model = _readable(key)
        return _model_out(db.session(), model, user, with_draft=True)

    @blp.arguments(ModelPatch)
    @blp.response(200, ModelOut)
    def patch(self, body, key):
        """Change name, description, category or who may start it."""
        user = catalogue.require_designer(auth.current_user())
        with db.unit_of_work() as s:
            model = catalogue.update(s, user, catalogue.get(s, key, for_update=True, user=user), body)
            return _model_out(s, model, user)


@blp.route("/<string:key>/draft")
class Draft(MethodView):
    @blp.arguments(DraftIn)
    @blp.response(200, SavedDraft)
    def put(self, body, key):
        """Save the draft; `version` is the one the editor loaded (409 when someone saved since)."""
        user = catalogue.require_designer(auth.current_user())
        with db.unit_of_work() as s:
            model = catalogue.get(s, key, for_update=True, user=user)
            draft = catalogue.save_draft(s, user, model, body.pop("version"), body)
            return {"version": draft.version, "updated_at": draft.updated_at.isoformat()}


@blp.route("/<string:key>/draft/xml")
class DraftXml(MethodView):
    @blp.response(200, {"type": "string"}, content_type="application/xml")
    def get(self, key):
        """The draft diagram as a .bpmn download."""
        _user, model = _readable(key)
        return Response(model.draft.xml, mimetype="application/xml", headers={
            "Content-Disposition": exports.disposition(checks.diagram_file(model))})


@blp.route("/<string:key>/validate")
class Validate(MethodView):
    @blp.arguments(ValidateIn)
    @blp.response(200, Validation)
    def post(self, body, key):
        """Problems of the draft (or of unsaved `xml`): [{element_id, file, message, severity}]."""
        user, model = _readable(key)
        found = checks.problems(db.session(), model, model.draft, body.get("xml"), user=user)
        return {"valid": not found, "problems": found}


@blp.route("/<string:key>/try")
class Try(MethodView):
    @blp.arguments(TryIn)
    @blp.response(200, TryOut)
    def post(self, body, key):
        """Run the draft in a sandbox with a scenario (or a saved one, `scenario_name`); nothing is kept."""
        _user, model = _readable(key)
        scenario = body.get("scenario")
        if scenario is None and body.get("scenario_name"):
            scenario = model.draft.scenarios.get(body["scenario_name"])
            if scenario is None:
                raise NotFound(_("Scenario '%(name)s' does not exist.", name=body["scenario_name"]))
        files = {checks.diagram_file(model): (body.get("xml") or model.draft.xml).encode()}
        # The whole package (forms too), as the scenario contract takes it.
        for name, text in {**model.draft.forms, **model.draft.dmn}.items():
            files.setdefault(name, text.encode())
        return tryit.run(files, model.key, scenario or {})


@blp.route("/<string:key>/deploy")
class Deploy(MethodView):
    @blp.arguments(DeployIn)
    @blp.response(201, Deployed)
    def post(self, body, key):
        """Deploy the draft (validation must pass) as the next version of the process."""
        user = catalogue.require_designer(auth.current_user())
        with db.unit_of_work() as s:
            model = catalogue.get(s, key, for_update=True, user=user)
            definition = checks.deploy(s, user, model, body["version"])
            return {"key": definition.key, "version": definition.version, "id": definition.id}


@blp.route("/<string:key>/diff")
class Diff(MethodView):
    @blp.arguments(DiffArgs, location="query")
    @blp.response(200, ModelDiff)
    def get(self, args, key):
        """Elements added, removed and changed from version `from` to version `to` (a number or 'draft')."""
        _user, model = _readable(key)
        s = db.session()
        old = catalogue.diagram(s, model, args["from_"] or "1")
        new = catalogue.diagram(s, model, args["to"] or "draft")
        return diff.diff(old, new)


@blp.route("/<string:key>/instances")
class Instances(MethodView):
    @blp.response(200, RunningInstances)
    def get(self, key):
        """Running instances per version, to decide on a migration (the owning department's designers)."""
        user, model = _readable(key)
        catalogue.require_editor(user, model)
        rows = db.session().execute(select(ProcessInstance.id, ProcessInstance.version, ProcessInstance.state,
                                           ProcessInstance.active_elements)
                                    .where(ProcessInstance.process_key == key,
                                           ProcessInstance.state.in_(("running", "error")))
                                    .order_by(ProcessInstance.id)).all()
        return {"items": [{"id": r.id, "version": r.version, "state": r.state,
                           "active": [a["element_id"] for a in r.active_elements or []]} for r in rows]}


@blp.route("/<string:key>/performers")
class PerformerChoices(MethodView):
    @blp.response(200, Performers)
    def get(self, key):
        """Who the model's tasks may go to: the initiator's people, the groups of the model's
        department and the platform's, and the department's people."""
        _user, model = _readable(key)
        return {"items": choices.performers(db.session(), model)}


@blp.route("/<string:key>/migrate")
class Migrate(MethodView):
    @blp.arguments(MigrateIn)
    @blp.response(200, Migration)
    def post(self, body, key):
        """Move running instances of older versions to `to_version` (default the latest); with
        `dry_run` only say which would move and which would stay, and why."""
        user = catalogue.require_designer(auth.current_user())
        with db.unit_of_work() as s:
            model = catalogue.get(s, key)
            return migrate.migrate(s, user, model, body.get("to_version"), body.get("instance_ids"),
                                   dry_run=body["dry_run"])


@blp.route("/<string:key>/package")
class Package(MethodView):
    @blp.response(200, ZIP, content_type="application/zip")
    def get(self, key):
        """The model as a zip: diagram, forms, DMN and scenarios."""
        _user, model = _readable(key)
        return Response(package.export(model), mimetype="application/zip", headers={
            "Content-Disposition": exports.disposition(f"{model.key}.zip")})

    @blp.doc(requestBody=PACKAGE_BODY)
    @blp.response(200, SavedDraft)
    def post(self, key):
        """Replace the draft with a package (multipart `file`, form field `version`)."""
        user = catalogue.require_designer(auth.current_user())
        upload = request.files.get("file")
        if upload is None:
            raise Invalid(_("Upload a .zip package."), [{"field": "file", "message": _("no file")}])
        version = request.form.get("version", type=int_arg)
        with db.unit_of_work() as s:
            model = catalogue.get(s, key, for_update=True, user=user)
            catalogue.require_editor(user, model)
            contents = package.read(upload.read())
            draft = catalogue.save_draft(s, user, model, model.draft.version if version is None else version, contents)
            meta = {k: v for k, v in contents["meta"].items() if k in ("name", "description", "category", "starters")}
            if meta:
                catalogue.update(s, user, model, meta)
            return {"version": draft.version}


@blp.route("/<string:key>/forms/preview")
class FormPreview(MethodView):
    @blp.arguments(PreviewIn)
    @blp.response(200, Preview)
    def post(self, body, key):
        """A form as staff will see it: the server's renderer on a JSON Schema and UI schema (or on a
        form file of the draft). With `submitted`, the fields are read and checked as a task page
        reads them, and the form comes back filled in, with its errors."""
        from flask import render_template
        from werkzeug.datastructures import MultiDict

        from .. import forms
        from ..errors import InvalidForm
        from ..pages import fields as form_fields

        _user, model = _readable(key)
        field = "form" if body.get("form") else "schema"
        try:
            if body.get("form"):
                schema = forms.task_schema(model.draft.forms.get(body["form"]), body["approval"])
                ui_text = model.draft.forms.get(body.get("ui_form") or "")
                ui = json.loads(ui_text) if ui_text else body.get("ui") or {}
            elif body.get("schema") is not None:
                schema, ui = body["schema"], body.get("ui") or {}
            else:
                raise Invalid(_("Give a form or a schema."), [{"field": "schema", "message": _("required")}])
            data, errors = {}, {}
            if body.get("submitted") is not None:
                data = form_fields.parse(schema, MultiDict([tuple(pair) for pair in body["submitted"]]))
                try:
                    forms.validate(schema, data, body["approval"])
                except InvalidForm as e:
                    errors = {d["field"]: d["message"] for d in e.details or []}
            built = form_fields.build(schema, ui if isinstance(ui, dict) else {}, data, errors)
        except Invalid:
            raise
        except Exception as e:  # noqa: BLE001 - a half-written schema must give a message, not a 500
            raise Invalid(_("The form cannot be shown: %(error)s", error=str(e)),
                          [{"field": field, "message": str(e)}]) from None
        html = render_template("studio_form_preview.html", form_fields=built)
        return {"html": html, "data": data, "errors": errors}
