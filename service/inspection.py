"""What the supervision group inspects (R-SUP-1: "检查账号管理、文件管理、流程管理等各项规定的执行情况").

Read-only views over every department: accounts (role, groups, last sign-in, dormant ones),
departments, document metadata and classification, and how processes run per department. Who may
look is the permission table's `inspect` rows (service/policy.py); every look is an audit event
`inspection_read` naming the view and its filters, so the inspectors are inspected too.

Documents: inspecting file management means checking that documents are classified, filed and
kept as the rules say, not reading them. The metadata of every document is listed; the title and
abstract of one above the inspector's clearance are withheld (a title can give a secret away),
and content is never served here: it stays behind the library's own rules (documents/access.py),
so a 秘密 document's content is "not found" for anybody without the clearance.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from . import audit, policy
from .errors import Invalid, NotFound
from .models import AuditEvent, Department, Group, OpenTask, ProcessDefinition, ProcessInstance, User, utcnow

# An enabled account nobody signed in to for this long is dormant: it should be disabled or its
# holder asked (the account rules: accounts are personal and in use).
DORMANT_AFTER = timedelta(days=90)
LIST_LIMIT = 500


def authorize(user: User, resource: str) -> User:
    return policy.authorize(user, "inspect", resource,
                            message=_("Only the supervision group and administrators may inspect this."))


def _department(s: Session, user: User, resource: str, code: str | None) -> Department | None:
    """The department filter: a known code, within the caller's scope; none for all in scope."""
    code = (code or "").strip()
    if not code:
        return None
    found = s.scalar(select(Department).where(Department.code == code))
    if found is None:
        message = _("There is no department '%(code)s'.", code=code)
        raise Invalid(message, [{"field": "department", "message": message}])
    if not policy.covers_department(user, "inspect", resource, found.id):
        message = _("There is no department '%(code)s'.", code=code)
        raise NotFound(message, [{"field": "department", "message": message}])
    return found


def _record(s: Session, user: User, view: str, object_type: str = "inspection", object_id=None, **detail) -> None:
    audit.record(s, "inspection_read", object_type, object_id if object_id is not None else view,
                 actor_id=user.id, detail={"view": view, **{k: v for k, v in detail.items() if v is not None}})


# -- accounts -------------------------------------------------------------------------------------

@dataclass
class Account:
    id: int
    username: str
    full_name: str
    department: str
    department_name: str
    role: str
    groups: list[str]
    group_names: list[str]
    active: bool
    created_at: datetime
    last_sign_in: datetime | None
    dormant: bool


def last_sign_ins(s: Session, user_ids: list[int] | None = None) -> dict[int, datetime]:
    """user id → their latest sign-in (audit `login`, written by every successful sign-in)."""
    query = select(AuditEvent.actor_id, func.max(AuditEvent.at)).where(
        AuditEvent.action == "login", AuditEvent.actor_id.is_not(None)).group_by(AuditEvent.actor_id)
    if user_ids is not None:
        query = query.where(AuditEvent.actor_id.in_(user_ids))
    return dict(s.execute(query).all())


def is_dormant(active: bool, created_at: datetime, last: datetime | None, now: datetime) -> bool:
    """Enabled, and neither created nor signed in to within DORMANT_AFTER."""
    return active and max(created_at, last or created_at) < now - DORMANT_AFTER


def accounts(s: Session, user: User, department: str | None = None, dormant_only: bool = False) -> list[Account]:
    authorize(user, "user")
    dept = _department(s, user, "user", department)
    query = (select(User, Department.code, Department.name).join(Department, Department.id == User.department_id)
             .where(policy.scope_filter(user, "inspect", "user")).order_by(Department.code, User.username))
    if dept is not None:
        query = query.where(User.department_id == dept.id)
    rows = s.execute(query).all()
    last = last_sign_ins(s, [u.id for u, _c, _n in rows]) if len(rows) < 1000 else last_sign_ins(s)
    group_names = dict(s.execute(select(Group.code, Group.name)).all())
    now = utcnow()
    out = []
    for u, code, name in rows:
        groups = sorted(u.groups)
        account = Account(u.id, u.username, u.full_name, code, name, u.role, groups,
                          [group_names.get(g, g) for g in groups], u.active, u.created_at, last.get(u.id),
                          is_dormant(u.active, u.created_at, last.get(u.id), now))
        if account.dormant or not dormant_only:
            out.append(account)
    _record(s, user, "accounts", department=department or None, dormant_only=dormant_only or None, count=len(out))
    return out


# -- departments ----------------------------------------------------------------------------------

def departments(s: Session, user: User) -> list[dict]:
    """Every department with its head, accounts (enabled, dormant), documents and open instances."""
    authorize(user, "department")
    from .documents.models import Document  # the library imports this module's neighbours

    rows = s.execute(select(Department).order_by(Department.code)).scalars().all()
    if policy.widest(user, "inspect", "department") != policy.ALL:
        rows = [d for d in rows if d.id == user.department_id]
    heads = dict(s.execute(select(User.id, User.full_name)).all()) if rows else {}
    now = utcnow()
    last = last_sign_ins(s)
    people: dict[int, list[int]] = {}
    for department_id, active, created_at, user_id in s.execute(
            select(User.department_id, User.active, User.created_at, User.id)):
        counts = people.setdefault(department_id, [0, 0, 0])
        counts[0] += 1
        counts[1] += int(bool(active))
        counts[2] += int(is_dormant(active, created_at, last.get(user_id), now))
    documents = dict(s.execute(select(Document.department_id, func.count()).where(Document.state != "deleted")
                               .group_by(Document.department_id)).all())
    running = dict(s.execute(select(ProcessInstance.department_id, func.count())
                             .where(ProcessInstance.state.in_(("running", "error")))
                             .group_by(ProcessInstance.department_id)).all())
    parents = {d.id: d.code for d in rows}
    out = [{"id": d.id, "code": d.code, "name": d.name, "parent": parents.get(d.parent_id),
            "head": heads.get(d.head_id), "accounts": people.get(d.id, [0, 0, 0])[0],
            "enabled_accounts": people.get(d.id, [0, 0, 0])[1], "dormant_accounts": people.get(d.id, [0, 0, 0])[2],
            "documents": documents.get(d.id, 0), "open_instances": running.get(d.id, 0)} for d in rows]
    _record(s, user, "departments", count=len(out))
    return out


# -- documents ------------------------------------------------------------------------------------

def _document_row(doc, department: tuple[str, str], owner: str | None, business_type: str | None,
                  within: bool) -> dict:
    from .documents.models import level_name

    return {"id": doc.id, "title": doc.title if within else None, "abstract": doc.abstract if within else None,
            "withheld": not within, "department": department[0], "department_name": department[1],
            "owner": owner, "security_level": level_name(doc.security_level), "business_type": business_type,
            "state": doc.state, "current_version": doc.current_version, "document_date": doc.document_date,
            "created_at": doc.created_at, "updated_at": doc.updated_at, "archived_at": doc.archived_at,
            "deleted_at": doc.deleted_at, "published_at": doc.published_at, "audience": doc.audience}


def _document_query(user: User):
    from .documents.models import BusinessType, Document

    return (select(Document, Department.code, Department.name, User.full_name, BusinessType.name)
            .join(Department, Department.id == Document.department_id)
            .outerjoin(User, User.id == Document.owner_id)
            .outerjoin(BusinessType, BusinessType.id == Document.business_type_id)
            .where(policy.scope_filter(user, "inspect", "document")))


def documents(s: Session, user: User, department: str | None = None, level: str | None = None) -> list[dict]:
    """The metadata of documents (deleted ones too: their purge is part of file management), newest first."""
    authorize(user, "document")
    from .documents.access import clearance
    from .documents.models import Document, parse_level

    dept = _department(s, user, "document", department)
    query = _document_query(user)
    if dept is not None:
        query = query.where(Document.department_id == dept.id)
    if level:
        rank = parse_level(level)
        if rank is None:
            message = _("'%(value)s' is not a security level.", value=level)
            raise Invalid(message, [{"field": "level", "message": message}])
        query = query.where(Document.security_level == rank)
    mine = clearance(s, user)
    out = [_document_row(doc, (code, name), owner, btype, doc.security_level <= mine)
           for doc, code, name, owner, btype in s.execute(
               query.order_by(Document.created_at.desc(), Document.id.desc()).limit(LIST_LIMIT))]
    _record(s, user, "documents", department=department or None, level=level or None, count=len(out))
    return out


def document(s: Session, user: User, document_id: int) -> dict:
    authorize(user, "document")
    from .documents.access import clearance
    from .documents.models import Document

    row = s.execute(_document_query(user).where(Document.id == document_id)).first()
    if row is None:
        raise NotFound(_("Document %(id)s not found.", id=document_id))
    doc, code, name, owner, btype = row
    out = _document_row(doc, (code, name), owner, btype, doc.security_level <= clearance(s, user))
    _record(s, user, "document", object_type="document", object_id=document_id)
    return out


# -- process execution ----------------------------------------------------------------------------

def processes(s: Session, user: User, department: str | None = None) -> list[dict]:
    """Per department and process: instances started, running, completed, cancelled, failed, and
    the open steps now past their due date."""
    authorize(user, "process_instance")
    dept = _department(s, user, "process_instance", department)
    scope = policy.scope_filter(user, "inspect", "process_instance")
    names = dict(s.execute(select(ProcessDefinition.key, ProcessDefinition.name)
                           .order_by(ProcessDefinition.version)).all())
    state = ProcessInstance.state
    query = (select(Department.code, Department.name, ProcessInstance.process_key, func.count(),
                    *[func.sum(case((state == st, 1), else_=0)) for st in ("running", "completed", "cancelled", "error")])
             .join(Department, Department.id == ProcessInstance.department_id).where(scope)
             .group_by(Department.code, Department.name, ProcessInstance.process_key))
    late = (select(Department.code, OpenTask.process_key, func.count(func.distinct(OpenTask.id)))
            .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
            .join(Department, Department.id == ProcessInstance.department_id)
            .where(scope, OpenTask.due_at < utcnow()).group_by(Department.code, OpenTask.process_key))
    if dept is not None:
        query, late = query.where(Department.id == dept.id), late.where(Department.id == dept.id)
    overdue = {(code, key): n for code, key, n in s.execute(late)}
    out = [{"department": code, "department_name": name, "process_key": key, "process_name": names.get(key) or key,
            "started": n, "running": int(r or 0), "completed": int(c or 0), "cancelled": int(x or 0),
            "failed": int(e or 0), "overdue_steps": overdue.get((code, key), 0)}
           for code, name, key, n, r, c, x, e in s.execute(query.order_by(Department.code, ProcessInstance.process_key))]
    _record(s, user, "processes", department=department or None, count=len(out))
    return out


def may_inspect(user: User) -> bool:
    return policy.widest(user, "inspect", "user") is not None

