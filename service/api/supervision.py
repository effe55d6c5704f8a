"""Live counts for the supervisors' views (R-WF-3): the overview page polls these.

Shapes are declared here rather than in schemas.py because only these routes use them."""
from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields

from .. import auth, db, supervision
from ..bounds import Integer
from .blueprint import Blueprint

PREFIX = "/supervision"
blp = Blueprint("supervision", __name__, description="Where running instances stand (supervisors, administrators)")


class ProcessCounts(Schema):
    key = fields.String()
    name = fields.String()
    latest = fields.Integer()
    running = fields.Integer()
    overdue = fields.Integer()
    incidents = fields.Integer()


class ProcessCountsList(Schema):
    items = fields.List(fields.Nested(ProcessCounts))


class ElementArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    version = Integer(load_default=None, minimum=1)


class ElementOverlay(Schema):
    name = fields.String()
    count = fields.Integer()
    overdue = fields.Integer()
    incidents = fields.Integer()
    href = fields.String()


class ElementCountsOut(Schema):
    key = fields.String()
    version = fields.Integer()
    elements = fields.Dict(keys=fields.String(), values=fields.Nested(ElementOverlay))


@blp.route("/processes")
class Processes(MethodView):
    @blp.response(200, ProcessCountsList)
    def get(self):
        """Every deployed process with its running, overdue and failed instances in the caller's scope."""
        user = auth.current_user()
        return {"items": supervision.processes(db.session(), user)}


@blp.route("/processes/<string:key>/elements")
class Elements(MethodView):
    @blp.arguments(ElementArgs, location="query")
    @blp.response(200, ElementCountsOut)
    def get(self, args, key):
        """Per element of one version (default the latest): instances waiting there, overdue, failed.
        The overview's diagram draws these as badges and re-reads them every few seconds."""
        user = auth.current_user()
        s = db.session()
        supervision.scope(user)  # refuse before revealing whether the process exists
        d = supervision.definition(s, key, args.get("version"))
        elements = {}
        for c in supervision.element_counts(s, user, d):
            elements[c.element_id] = dict(c.as_dict(), href=url_for(
                "pages.supervise.process", key=d.key, version=d.version, element=c.element_id) + "#waiting")
        return {"key": d.key, "version": d.version, "elements": elements}
