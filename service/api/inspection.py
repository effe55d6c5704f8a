"""Inspection by the supervision group (R-SUP-1): read-only, every read audited (service/inspection.py)."""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields

from .. import auth, db, inspection
from .blueprint import Blueprint

PREFIX = "/inspection"
blp = Blueprint("inspection", __name__, description="Inspection of accounts, documents and processes (supervisors)")


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


class DepartmentArgs(_In):
    department = fields.String(load_default=None, metadata={"description": "a department code; default all in scope"})


class AccountArgs(DepartmentArgs):
    dormant = fields.Boolean(load_default=False, metadata={"description": "only dormant accounts"})


class DocumentArgs(DepartmentArgs):
    level = fields.String(load_default=None, metadata={"description": "a security level: 公开 内部 秘密 机密 核心机密"})


class InspectedAccount(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    department = fields.String()
    department_name = fields.String()
    role = fields.String()
    groups = fields.List(fields.String())
    group_names = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()
    last_sign_in = fields.DateTime(allow_none=True)
    dormant = fields.Boolean(metadata={"description": "enabled but not signed in to for 90 days"})


class InspectedAccounts(Schema):
    items = fields.List(fields.Nested(InspectedAccount))
    dormant_after_days = fields.Integer()


class InspectedDepartment(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    parent = fields.String(allow_none=True)
    head = fields.String(allow_none=True)
    accounts = fields.Integer()
    enabled_accounts = fields.Integer()
    dormant_accounts = fields.Integer()
    documents = fields.Integer()
    open_instances = fields.Integer()


class InspectedDepartments(Schema):
    items = fields.List(fields.Nested(InspectedDepartment))


class DocumentMeta(Schema):
    id = fields.Integer()
    title = fields.String(allow_none=True, metadata={"description": "withheld above the caller's clearance"})
    abstract = fields.String(allow_none=True)
    withheld = fields.Boolean()
    department = fields.String()
    department_name = fields.String()
    owner = fields.String(allow_none=True)
    security_level = fields.String()
    business_type = fields.String(allow_none=True)
    state = fields.String()
    current_version = fields.Integer()
    document_date = fields.Date(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    archived_at = fields.DateTime(allow_none=True)
    deleted_at = fields.DateTime(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    audience = fields.String(allow_none=True)


class DocumentMetaList(Schema):
    items = fields.List(fields.Nested(DocumentMeta))


class ProcessRow(Schema):
    department = fields.String()
    department_name = fields.String()
    process_key = fields.String()
    process_name = fields.String()
    started = fields.Integer()
    running = fields.Integer()
    completed = fields.Integer()
    cancelled = fields.Integer()
    failed = fields.Integer()
    overdue_steps = fields.Integer()


class ProcessRows(Schema):
    items = fields.List(fields.Nested(ProcessRow))


@blp.route("/accounts")
class Accounts(MethodView):
    @blp.arguments(AccountArgs, location="query")
    @blp.response(200, InspectedAccounts)
    def get(self, args):
        """Accounts with their role, groups and last sign-in; `dormant` lists only the dormant ones."""
        with db.unit_of_work() as s:
            items = inspection.accounts(s, auth.current_user(), args["department"], args["dormant"])
        return {"items": items, "dormant_after_days": inspection.DORMANT_AFTER.days}


@blp.route("/departments")
class Departments(MethodView):
    @blp.response(200, InspectedDepartments)
    def get(self):
        """Departments with their accounts (enabled, dormant), documents and open instances."""
        with db.unit_of_work() as s:
            return {"items": inspection.departments(s, auth.current_user())}


@blp.route("/documents")
class Documents(MethodView):
    @blp.arguments(DocumentArgs, location="query")
    @blp.response(200, DocumentMetaList)
    def get(self, args):
        """Document metadata and classification, newest first; never content."""
        with db.unit_of_work() as s:
            return {"items": inspection.documents(s, auth.current_user(), args["department"], args["level"])}


@blp.route("/documents/<int:document_id>")
class DocumentOne(MethodView):
    @blp.response(200, DocumentMeta)
    def get(self, document_id):
        """One document's metadata and classification."""
        with db.unit_of_work() as s:
            return inspection.document(s, auth.current_user(), document_id)


@blp.route("/processes")
class Processes(MethodView):
    @blp.arguments(DepartmentArgs, location="query")
    @blp.response(200, ProcessRows)
    def get(self, args):
        """Per department and process: started, running, completed, cancelled, failed, overdue steps."""
        with db.unit_of_work() as s:
            return {"items": inspection.processes(s, auth.current_user(), args["department"])}
