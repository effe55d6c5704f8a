"""The API's shapes, described once: marshmallow validates input and documents it in OpenAPI."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from ..bounds import Integer, JsonObject


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


class TokenRequest(_In):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024), load_only=True)
    # The second factor: a TOTP code or a recovery code, for accounts that have one (R-SEC-6).
    otp = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32), load_only=True)


class SessionInfo(Schema):
    """One of my page sessions or API tokens (never the secret itself)."""

    id = fields.Integer()
    kind = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    last_seen_at = fields.DateTime(allow_none=True)
    user_agent = fields.String(allow_none=True)
    client_addr = fields.String(allow_none=True)
    current = fields.Boolean()


class SessionList(Schema):
    items = fields.List(fields.Nested(SessionInfo))


class EndedSessions(Schema):
    ended = fields.Integer()


class PasswordReset(Schema):
    username = fields.String()
    temporary_password = fields.String()
    must_change_password = fields.Boolean()


class MfaResetArgs(Schema):
    # Checked (required, at most 2000 characters) after the caller's right to reset, so a stranger
    # learns nothing from the order of the errors.
    reason = fields.String(load_default="", metadata={"description": "Why (required; audited)."})


class MfaReset(Schema):
    username = fields.String()
    sessions_ended = fields.Integer()


class Token(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class ListArgs(_In):
    limit = Integer(load_default=50, minimum=1, maximum=500)
    offset = Integer(load_default=0, minimum=0)


class Definition(Schema):
    id = fields.Integer()
    key = fields.String()
    version = fields.Integer()
    name = fields.String()
    description = fields.String()
    file = fields.String()
    deployed_at = fields.DateTime()


class VersionArgs(_In):
    version = Integer(minimum=1, metadata={"description": "default: the latest"})


class DefinitionList(Schema):
    items = fields.List(fields.Nested(Definition))
    total = fields.Integer()


class StartInstance(_In):
    process_key = fields.String(required=True, validate=validate.Length(min=1, max=128))
    business_key = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    data = JsonObject(load_default=dict)


class InstanceArgs(ListArgs):
    state = fields.String(validate=validate.OneOf(["running", "completed", "cancelled", "withdrawn", "error"]))
    process_key = fields.String()
    started_by = fields.String()
    business_key = fields.String()


class HistoryEntry(Schema):
    element_id = fields.String()
    name = fields.String(allow_none=True)
    kind = fields.String()
    user = fields.String(allow_none=True)
    completed_at = fields.DateTime()
    decision = fields.String(allow_none=True)
    opinion = fields.String(allow_none=True)


class InstanceOut(Schema):
    id = fields.Integer()
    process_key = fields.String()
    version = fields.Integer()
    business_key = fields.String(allow_none=True)
    state = fields.String()
    started_by = fields.String(allow_none=True)
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    active_elements = fields.List(fields.String())
    completed_elements = fields.List(fields.String())
    incidents = fields.List(fields.Dict())
    history = fields.List(fields.Nested(HistoryEntry), metadata={
        "description": "Steps, oldest first: all of them on GET; the most recent 20 in answers to actions."})
    history_total = fields.Integer()
    one_time_secrets = fields.List(fields.Dict(), metadata={
        "description": "Shown once to the caller and never stored, e.g. an initial password."})


class InstanceSummary(InstanceOut):
    class Meta:
        exclude = ("history", "history_total", "one_time_secrets", "completed_elements")


class InstanceList(Schema):
    items = fields.List(fields.Nested(InstanceSummary))
    total = fields.Integer()


class CancelInstance(_In):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class WithdrawInstance(_In):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class RetryInstance(_In):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    data = JsonObject(load_default=None, allow_none=True)


class ReassignTask(_In):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class TaskArgs(ListArgs):
    process_key = fields.String()
    instance_id = Integer(minimum=0)
    scope = fields.String(load_default="mine", validate=validate.OneOf(["mine", "assigned", "unclaimed", "all"]))
    overdue = fields.Boolean(load_default=False)
    # Keyset paging: the `next` of the previous page (offset still works, but costs a scan).
    after = fields.String(validate=validate.Length(max=200))


class TaskOut(Schema):
    id = fields.String()
    instance_id = fields.Integer()
    process_key = fields.String()
    element_id = fields.String()
    name = fields.String()
    lane = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    candidates = fields.Dict()
    created_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()
    approval = fields.Boolean()
    instructions = fields.String()
    form = fields.Dict(allow_none=True)
    ui_schema = fields.Dict(allow_none=True)
    data = fields.Dict()


class TaskSummary(TaskOut):
    class Meta:
        exclude = ("form", "ui_schema", "data")


class TaskList(Schema):
    items = fields.List(fields.Nested(TaskSummary))
    # Counted up to 1,000 (service/inbox.py COUNT_CAP); total_capped says there are more.
    total = fields.Integer()
    total_capped = fields.Boolean()
    # `after` for the next page; null on the last one.
    next = fields.String(allow_none=True)


class CompleteTask(_In):
    data = JsonObject(load_default=dict)


class Message(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    business_key = fields.String(load_default=None, allow_none=True)
    correlation = JsonObject(load_default=None, allow_none=True)
    payload = JsonObject(load_default=dict)


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    department = fields.String(attribute="department.code")
    role = fields.String()
    groups = fields.Method("_groups")
    active = fields.Boolean()
    must_change_password = fields.Boolean()

    def _groups(self, user):
        return sorted(user.groups)


class UserList(Schema):
    items = fields.List(fields.Nested(UserOut))
    total = fields.Integer()


class DepartmentOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_en = fields.String(allow_none=True, metadata={"description": "the name in English, if given"})
    parent = fields.String(attribute="parent.code", allow_none=True)
    head = fields.String(allow_none=True)


class DepartmentList(Schema):
    items = fields.List(fields.Nested(DepartmentOut))
    total = fields.Integer()


class GroupMember(Schema):
    username = fields.String()
    full_name = fields.String()


class GroupOut(Schema):
    code = fields.String(attribute="group.code", metadata={"description": "what lanes and `performers` name"})
    name = fields.String(attribute="group.name", metadata={"description": "the Chinese name"})
    name_en = fields.String(attribute="group.name_en", allow_none=True)
    department = fields.String(allow_none=True, metadata={"description": "the department that keeps it; null: the platform"})
    builtin = fields.Boolean(attribute="group.builtin", metadata={"description": "built in: never renamed or deleted"})
    members = fields.List(fields.Nested(GroupMember), metadata={"description": "the members the caller may read"})
    manageable = fields.Boolean(metadata={"description": "the caller may rename or delete it"})
    grantable = fields.Boolean(metadata={"description": "the caller may add and remove members"})


class GroupList(Schema):
    items = fields.List(fields.Nested(GroupOut))
    total = fields.Integer()


class GroupIn(_In):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "lower-case letters, digits and _, starting with a letter"})
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    name_en = fields.String(allow_none=True, validate=validate.Length(max=200))
    department = fields.String(allow_none=True, metadata={
        "description": "a department code; null: a platform group (system administrators). Left out: the "
                       "platform for system administrators, the caller's own department for department administrators"})


class GroupPatch(_In):
    name = fields.String(validate=validate.Length(min=1, max=200))
    name_en = fields.String(allow_none=True, validate=validate.Length(max=200))


class GroupMemberIn(_In):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ErrorOut(Schema):
    """Every error answer (service/errors.py)."""

    code = fields.String(required=True, metadata={"description": "e.g. not_found, invalid, invalid_json, too_large"})
    message = fields.String(required=True, metadata={"description": "in the caller's language"})
    details = fields.Raw(required=True, allow_none=True, metadata={
        "description": "null, or what is wrong: [{field, message}] for input, [{file, element, line, message}] "
                       "for diagrams"})


class PolicyRule(Schema):
    holder = fields.String(metadata={"description": "anyone, role:<role> or group:<code>"})
    action = fields.String()
    resource = fields.String()
    scope = fields.String(metadata={"description": "own, department or all"})


class PolicyGrants(Schema):
    holder = fields.String()
    roles = fields.List(fields.String())
    groups = fields.List(fields.String())


class ServiceAuthority(Schema):
    service = fields.String()
    effect = fields.String(metadata={"description": "none, notices, reads, accounts, permissions, documents, "
                                                    "records or configuration"})
    action = fields.String(allow_none=True, metadata={"description": "the permission it needs (none: checks only)"})
    resource = fields.String(allow_none=True)
    relies_on = fields.List(fields.String(), metadata={
        "description": "the approvals it acts on, in order: element (who may give it); alternatives joined by |"})


class Policy(Schema):
    rules = fields.List(fields.Nested(PolicyRule))
    services = fields.List(fields.Nested(ServiceAuthority), metadata={
        "description": "what each service diagrams may call does, and the permission its deployer needs"})
    grants = fields.List(fields.Nested(PolicyGrants), metadata={"description": "what each holder may grant"})
    roles = fields.List(fields.String())
    scopes = fields.List(fields.String())


class MaintenanceCheck(Schema):
    code = fields.String(metadata={"description": "database, audit_chain, disk_data, disk_backups, last_backup"})
    name = fields.String()
    ok = fields.Boolean()
    detail = fields.String()


class MaintenanceJob(Schema):
    kind = fields.String()
    ref = fields.String()
    due_at = fields.DateTime()
    fired = fields.Integer()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)


class BackupProblem(Schema):
    part = fields.String(metadata={"description": "the file of the backup, e.g. db/users.jsonl or manifest.json"})
    problem = fields.String(metadata={"description": "signature, checksum, missing, unlisted, count, audit_chain, …"})
    detail = fields.String()


class BackupVerification(Schema):
    at = fields.String()
    ok = fields.Boolean()
    problems = fields.List(fields.Nested(BackupProblem))


class BackupOut(Schema):
    id = fields.String()
    created_at = fields.DateTime(allow_none=True)
    rows = fields.Integer()
    size = fields.Integer()
    verification = fields.Nested(BackupVerification, allow_none=True)


class Maintenance(Schema):
    checks = fields.List(fields.Nested(MaintenanceCheck))
    jobs = fields.List(fields.Nested(MaintenanceJob))
    backups = fields.List(fields.Nested(BackupOut))


class SubstitutionIn(_In):
    """A substitute for a period (issue 17): the colleague's username, from and until when, and why."""

    substitute = fields.String(required=True, validate=validate.Length(min=1, max=64))
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class SubstitutionOut(Schema):
    id = fields.Integer()
    substitute = fields.String()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    reason = fields.String()


class SubstitutionList(Schema):
    items = fields.List(fields.Nested(SubstitutionOut))


class UserCreate(_In):
    """A new account (issue 17, R-ACC-3): administrators, within what they may grant."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    department = fields.String(required=True, validate=validate.Length(min=1, max=64))
    role = fields.String(load_default="user", validate=validate.Length(max=32))
    groups = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                         validate=validate.Length(max=50))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    post = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class UserChange(_In):
    full_name = fields.String(validate=validate.Length(min=1, max=200))
    role = fields.String(validate=validate.Length(max=32))
    groups = fields.List(fields.String(validate=validate.Length(max=64)), validate=validate.Length(max=50))
    email = fields.String(allow_none=True, validate=validate.Length(max=200))
    post = fields.String(allow_none=True, validate=validate.Length(max=200))


class UserCreated(UserOut):
    temporary_password = fields.String()


class Deactivation(_In):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DepartmentCreate(_In):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    name_en = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    parent = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class DepartmentHead(_In):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
