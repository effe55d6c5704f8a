from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import auth, db, policy
from .. import definitions as deployments
from ..errors import Invalid, NotFound
from ..models import DeploymentFile, ProcessDefinition
from .blueprint import Blueprint
from .schemas import DefinitionList, ListArgs, VersionArgs

PREFIX = "/process-definitions"
blp = Blueprint("process_definitions", __name__, description="Deployed process definitions")

@blp.route("")
class Definitions(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, DefinitionList)
    def get(self, args):
        """Latest version of every deployed process."""
        auth.current_user()
        s = db.session()
        latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
                  .group_by(ProcessDefinition.key).subquery())
        query = select(ProcessDefinition).join(
            latest, (ProcessDefinition.key == latest.c.key) & (ProcessDefinition.version == latest.c.v))
        total = s.scalar(select(func.count()).select_from(latest))
        items = s.scalars(query.order_by(ProcessDefinition.key).limit(args["limit"]).offset(args["offset"])).all()
        return {"items": items, "total": total}

    @blp.response(201, DefinitionList)
    @blp.doc(requestBody={"content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}})
    def post(self):
        """Deploy .bpmn, .dmn and form .json files (multipart field `files`); each process gets a new version."""
        user = policy.authorize(auth.current_user(), "deploy", "process_definition")
        uploads = request.files.getlist("files") or list(request.files.values())
        if not uploads:
            raise Invalid(_("Upload at least one .bpmn file."), [{"field": "files", "message": _("no file")}])
        with db.unit_of_work() as s:
            created = deployments.deploy(s, user, [(f.filename or "", f.read()) for f in uploads])
        return {"items": created, "total": len(created)}


def _versions(key: str) -> list[ProcessDefinition]:
    items = db.session().scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                                 .order_by(ProcessDefinition.version.desc())).all()
    if not items:
        raise NotFound(_("Process '%(key)s' is not deployed.", key=key))
    return items


@blp.route("/<string:key>")
class DefinitionVersions(MethodView):
    @blp.response(200, DefinitionList)
    def get(self, key):
        """Every deployed version of a process, newest first."""
        auth.current_user()
        items = _versions(key)
        return {"items": items, "total": len(items)}


@blp.route("/<string:key>/xml")
class DefinitionXml(MethodView):
    @blp.arguments(VersionArgs, location="query")
    @blp.response(200, {"type": "string"}, content_type="application/xml")
    def get(self, args, key):
        """The BPMN XML of a version (`?version=N`, default the latest)."""
        auth.current_user()
        versions = _versions(key)
        wanted = args.get("version")
        definition = next((d for d in versions if d.version == wanted), None) if wanted else versions[0]
        if definition is None:
            raise NotFound(_("Version %(v)s of '%(key)s' does not exist.", v=wanted, key=key))
        content = db.session().scalar(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id == definition.deployment_id, DeploymentFile.name == definition.file))
        return Response(content, mimetype="application/xml")

