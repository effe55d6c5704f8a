"""Authorisation as one table (R-ACC-3, R-SEC-7): who may do what to which resource, in which scope.

A row names a holder (a role, a functional group, or `anyone` signed in), an action, a resource
type and a scope: `own` (what the caller owns or takes part in), `department` (their own
department's) or `all`. A caller's rights are the union of the rows their role and groups match.

`authorize` checks one action (and one object); `scope_filter` gives the SQL condition that lists
exactly the objects `authorize` would admit, so lists and lookups cannot disagree. API routes,
pages and services call these two instead of testing roles and groups themselves.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import and_, false, inspect, or_, select, true
from sqlalchemy.orm import object_session

from .errors import Forbidden, NotFound
from .inbox import offered_to
from .models import ROLES, Group, InstanceStep, OpenTask, PerformanceRecord, ProcessInstance, User

OWN, DEPARTMENT, ALL = "own", "department", "all"
SCOPES = (OWN, DEPARTMENT, ALL)
ANYONE = "anyone"


@dataclass(frozen=True)
class Rule:
    holder: str  # "anyone", "role:<role>" or "group:<code>"
    action: str
    resource: str
    scope: str


def _rules(holder: str, scope: str, *pairs: str) -> tuple[Rule, ...]:
    return tuple(Rule(holder, *pair.split(" on "), scope) for pair in pairs)


SYSTEM_ADMIN, DEPT_ADMIN = "role:system_admin", "role:dept_admin"
PLATFORM, SUPERVISOR, DESIGNER = "group:platform_admin", "group:supervisor", "group:designer"
AUDITOR = "group:auditor"

INSPECTS = ("inspect on user", "inspect on department", "inspect on document", "inspect on process_instance")

RULES: tuple[Rule, ...] = (
    # Everybody: their own work. Reading a document is not a rule: clearance decides first, and
    # shares and publication within it (documents/access.py); `administer document` acts within clearance.
    *_rules(ANYONE, OWN, "read on process_instance", "cancel on process_instance", "read on task",
            "complete on task"),
    # Department administrators: their own department's accounts and business data (R-ACC-3).
    *_rules(DEPT_ADMIN, DEPARTMENT, "read on user", "manage on user", "review on grant",
            "read on process_instance", "reassign on process_instance", "administer on document"),
    *_rules(DEPT_ADMIN, ALL, "read on department", "read on policy", "read on group"),
    # Functional groups (R-ACC-3, R-WF-1): a department administrator keeps their department's.
    *_rules(DEPT_ADMIN, DEPARTMENT, "manage on group"),
    # Watching processes and the indicators (R-SUP-1, R-SUP-3): a department administrator, their
    # department's; supervision and the platform, everything.
    *_rules(DEPT_ADMIN, DEPARTMENT, "supervise on process_instance", "read on analytics"),
    # The platform management department runs the procedures of the whole organisation.
    *_rules(PLATFORM, ALL, "read on process_instance", "cancel on process_instance",
            "retry on process_instance", "reassign on process_instance", "deliver on message",
            "deploy on process_definition", "deploy on builtin_process", "edit on business_type", "read on policy",
            "start on permission_review",
            "review on grant", "supervise on process_instance", "move_back on process_instance", "read on analytics"),
    # Supervision (R-SUP-4): spot-check assessments; supervisors and inspectors record findings.
    # R-SUP-1: the supervision group (and the system administrators) start spot checks (不定期抽查).
    *_rules(SUPERVISOR, ALL, "read on process_instance", "start on quarterly_assessment", "start on spot_check",
            "record on finding", "supervise on process_instance", "read on analytics"),
    *_rules("group:inspector", ALL, "record on finding"),
    # Inspection (R-SUP-1): supervisors and inspectors read how accounts, files and processes are
    # kept in every department, read-only and audited (service/inspection.py); a department
    # administrator their own department's. Document content stays behind clearance and shares.
    *_rules(SUPERVISOR, ALL, *INSPECTS),
    *_rules("group:inspector", ALL, *INSPECTS),
    *_rules(DEPT_ADMIN, DEPARTMENT, *INSPECTS),
    # Performance records (R-SUP-5): the supervision group and the platform (which serves HR) all;
    # a department administrator their department's.
    *_rules(SUPERVISOR, ALL, "read on performance_record"),
    *_rules(PLATFORM, ALL, "read on performance_record"),
    *_rules(DEPT_ADMIN, DEPARTMENT, "read on performance_record"),
    *_rules(DESIGNER, ALL, "deploy on process_definition"),
    # Auditors (R-SEC-4, R-SEC-8, issue 15): read and export the audit log, review its anomalies;
    # every read of theirs is itself audited (service/audit_log.py). System administrators do not
    # read the log: who keeps the system is not who checks on it. Supervisors get the monthly
    # access review.
    *_rules(AUDITOR, ALL, "read on audit_log", "export on audit_log", "read on audit_finding",
            "review on audit_finding", "read on access_review"),
    *_rules(SUPERVISOR, ALL, "read on access_review"),
    # Acts only a procedure performs, through a service and after the approvals it relies on
    # (service/authority.py): the platform's own procedures call them, and a diagram deployed by
    # someone who holds them everywhere (R-ACC-2, R-ACC-4, R-DOC-4, R-SUP-4).
    *_rules(PLATFORM, ALL, "create on user", "change on grant", "deactivate on user", "hand_over on document",
            "publish on document"),
    *_rules(SUPERVISOR, ALL, "publish on assessment"),
    *_rules(SYSTEM_ADMIN, ALL, "create on user", "change on grant", "deactivate on user", "hand_over on document",
            "publish on document", "publish on assessment"),
    # The studio (R-WF-1): a department's designers edit and deploy their department's process models.
    *_rules(DESIGNER, DEPARTMENT, "edit on process_model"),
    # System administrators: configuration and maintenance. Documents above their clearance stay
    # closed (mandatory access control); `break_glass` opens one for a while, audited.
    *_rules(SYSTEM_ADMIN, ALL, "read on user", "manage on user", "read on department", "read on policy",
            "read on process_instance", "cancel on process_instance", "retry on process_instance",
            "reassign on process_instance", "read on task", "list_all on task", "deliver on message",
            "deploy on process_definition", "deploy on builtin_process", "administer on document", "break_glass on document",
            "set on clearance", "edit on business_type", "maintain on library", "start on permission_review",
            "start on spot_check", "review on grant", "supervise on process_instance", "move_back on process_instance",
            "read on analytics", "maintain on platform", "edit on process_model", "read on group", "manage on group",
            *INSPECTS, "read on performance_record"),
)

# Processes whose start the table governs (a `start` row names the process key): only the holders
# of a row start them by hand (service/studio/catalogue.may_start, the start page).
STARTED_BY_RULE = frozenset(r.resource for r in RULES if r.action == "start")

# Nobody grants more than they hold: the roles and groups each holder may hand out (R-SEC-7).
# Office groups (dept_head follows the department's head, platform_admin is set up by the system
# administrators) are granted by no procedure. The platform management department decides the
# grants of an account application and of a permission change in its final review (R-ACC-2, R-ACC-4).
# A group a department or the platform added is granted by whoever may `manage` it (the rows
# above), to people of its department.
GRANTABLE_ROLES = {SYSTEM_ADMIN: ("user", "dept_admin"), DEPT_ADMIN: ("user", "dept_admin"),
                   PLATFORM: ("user", "dept_admin")}
GRANTABLE_GROUPS = {
    SYSTEM_ADMIN: ("designer", "inspector", "supervisor", "confidentiality_officer", "auditor"),
    PLATFORM: ("designer", "inspector", "supervisor", "confidentiality_officer", "auditor"),
    DEPT_ADMIN: ("designer", "inspector"),
}
OFFICE_GROUPS = frozenset({"platform_admin", "dept_head"})


@dataclass(frozen=True)
class Resource:
    """How a resource type is scoped: the department and ownership conditions over its table."""

    model: type
    department: Callable[[User], object] | None = None
    own: Callable[[User], object] | None = None
    # The `own` condition evaluated on a loaded object, where that needs no query (the same rule
    # as `own`; a test checks the two agree): saves a round trip on the hot path of every step.
    own_loaded: Callable[[User, object], bool] | None = None
    # The column holding a loaded object's department, so the `department` scope of one object is
    # decided without a query (the same rule as `department`).
    department_attr: str | None = None


def _instance_own(user: User):
    acted = select(InstanceStep.instance_id).where(InstanceStep.user_id == user.id)
    assigned = select(OpenTask.instance_id).where(or_(OpenTask.id.in_(offered_to(user)), OpenTask.assignee_id == user.id))
    return or_(ProcessInstance.started_by == user.id, ProcessInstance.id.in_(acted), ProcessInstance.id.in_(assigned))


def _task_own(user: User):
    return or_(OpenTask.assignee_id == user.id, and_(OpenTask.assignee_id.is_(None), OpenTask.id.in_(offered_to(user))))


def _task_own_loaded(user: User, task: OpenTask) -> bool | None:
    if "candidates" in inspect(task).unloaded:
        return None  # not loaded: ask the database
    return task.assignee_id == user.id or (task.assignee_id is None and any(
        c.user_id == user.id or (c.group_code is not None and c.group_code in user.groups) for c in task.candidates))


def _document_resource() -> Resource:
    from .documents.models import Document  # the library imports this module

    return Resource(Document, department=lambda u: Document.department_id == u.department_id,
                    own=lambda u: Document.owner_id == u.id, department_attr="department_id")


def _process_model_resource() -> Resource:
    from .studio.models import ProcessModel  # the studio imports this module

    return Resource(ProcessModel, department=lambda u: ProcessModel.department_id == u.department_id,
                    department_attr="department_id")


RESOURCES: dict[str, Callable[[], Resource]] = {
    "group": lambda: Resource(Group, department=lambda u: Group.department_id == u.department_id,
                              department_attr="department_id"),
    "user": lambda: Resource(User, department=lambda u: User.department_id == u.department_id,
                             own=lambda u: User.id == u.id, department_attr="department_id"),
    "grant": lambda: Resource(User, department=lambda u: User.department_id == u.department_id,
                              department_attr="department_id"),
    "process_instance": lambda: Resource(ProcessInstance,
                                         department=lambda u: ProcessInstance.department_id == u.department_id,
                                         own=_instance_own, department_attr="department_id"),
    "task": lambda: Resource(OpenTask, own=_task_own, own_loaded=_task_own_loaded),
    "performance_record": lambda: Resource(
        PerformanceRecord, department=lambda u: PerformanceRecord.department_id == u.department_id,
        department_attr="department_id"),
    "document": _document_resource,
    "process_model": _process_model_resource,
}


def holders(user: User) -> set[str]:
    return {ANYONE, f"role:{user.role}"} | {f"group:{code}" for code in user.groups}


def scopes(user: User, action: str, resource: str) -> set[str]:
    mine = holders(user)
    return {r.scope for r in RULES if r.action == action and r.resource == resource and r.holder in mine}


def scope_filter(user: User, action: str, resource: str):
    """A WHERE clause over the resource's table: the objects `user` may `action`."""
    granted = scopes(user, action, resource)
    if ALL in granted:
        return true()
    spec = RESOURCES[resource]()
    clauses = [getattr(spec, scope)(user) for scope in (DEPARTMENT, OWN)
               if scope in granted and getattr(spec, scope) is not None]
    return or_(*clauses) if clauses else false()


def _in_scope(user: User, action: str, resource: str, obj) -> bool:
    spec = RESOURCES[resource]()
    (key,) = inspect(spec.model).primary_key
    s = object_session(obj)
    return s.scalar(select(key).where(key == inspect(obj).identity[0], scope_filter(user, action, resource))) is not None


def widest(user: User, action: str, resource: str) -> str | None:
    """The widest scope `user` holds for the action, or None."""
    granted = scopes(user, action, resource)
    return next((scope for scope in (ALL, DEPARTMENT, OWN) if scope in granted), None)


def covers_department(user: User, action: str, resource: str, department_id: int | None) -> bool:
    """May `user` act on the resources of this department as a whole (e.g. file a document there)?"""
    granted = scopes(user, action, resource)
    return ALL in granted or (DEPARTMENT in granted and department_id == user.department_id)


def allows(user: User, action: str, resource: str, obj=None) -> bool:
    granted = scopes(user, action, resource)
    if not granted:
        return False
    if obj is None or ALL in granted:
        return True
    spec = RESOURCES[resource]()
    if DEPARTMENT in granted and spec.department_attr is not None:
        if getattr(obj, spec.department_attr) == user.department_id:
            return True
        granted = granted - {DEPARTMENT}
        if not granted:
            return False
    if granted == {OWN} and spec.own_loaded is not None:
        answer = spec.own_loaded(user, obj)
        if answer is not None:
            return answer
    return _in_scope(user, action, resource, obj)


def authorize(user: User, action: str, resource: str, obj=None, *, hide: bool = False,
              message: str | None = None) -> User:
    """Raise unless `user` may `action` the resource (type, or `obj`). With `hide`, a refusal is
    "not found", for callers who must not learn that the object exists."""
    if allows(user, action, resource, obj):
        return user
    if hide:
        raise NotFound(message or _("Not found."))
    raise Forbidden(message or _("You are not allowed to do this."))


def may_grant(granter: User | None, role: str | None = None, groups: Iterable[Group] = ()) -> list[str]:
    """What of `role` and `groups` `granter` may not hand out (empty: all of it). `None` is the
    installer (CLI), who may grant everything."""
    if granter is None:
        return []
    mine = holders(granter)
    roles = {r for h in mine for r in GRANTABLE_ROLES.get(h, ())}
    builtin = {g for h in mine for g in GRANTABLE_GROUPS.get(h, ())}
    refused = [] if role is None or role in roles else [role]
    return refused + sorted(group.code for group in groups
                            if not (group.code in builtin if group.builtin else allows(granter, "manage", "group", group)))


def table() -> dict:
    """The rules as rows, for the read-only view (GET /api/v1/policy) and the documentation, with
    the permission each service diagrams may call needs (service/authority.py)."""
    from . import authority  # it imports this module

    rows = [{"holder": r.holder, "action": r.action, "resource": r.resource, "scope": r.scope} for r in RULES]
    grants = [{"holder": h, "roles": list(GRANTABLE_ROLES.get(h, ())), "groups": list(GRANTABLE_GROUPS.get(h, ()))}
              for h in sorted(set(GRANTABLE_ROLES) | set(GRANTABLE_GROUPS))]
    return {"rules": rows, "grants": grants, "roles": list(ROLES), "scopes": list(SCOPES),
            "services": authority.table()}
