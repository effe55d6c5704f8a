"""Reading the audit log (R-SEC-4, R-SEC-8, issue 15): search, export, and the log of reads.

Auditors (the `auditor` group, `read on audit_log` in service/policy.py) search the log by person,
action, object, department, time and address, and by words in the detail; every search and every
export is itself a row of the log. The API (service/api/audit.py) and the pages
(service/pages/audit.py) call the same functions here.

Reads of instances, tasks and user records are logged too (documents log their own views and
downloads, service/documents/library.py): a service function that hands out such a record calls
`note_read`, and once the request has answered, one row (`records_read`) names everything it read.
One row per request, written after the answer is ready, keeps the cost to one small insert
(bench/read_audit.py measures it); `Config.read_audit` turns it off.

The rows are written only through `audit.record`, which chains them (service/audit.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as N_
from sqlalchemy import Text, cast, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from . import audit, db, exports, policy
from .errors import Invalid
from .localtime import PLATFORM_TZ
from .models import AuditEvent, Department, User

MAX_PAGE = 500
MAX_EXPORT = 50_000
MAX_TEXT = 200
READ_ACTION = "records_read"

# What people read instead of the action codes (unknown codes are shown as they are).
ACTIONS = {
    "login": N_("Sign-in"), "login_failed": N_("Failed sign-in"), "logout": N_("Signed out"),
    "session_expired": N_("Session expired"), "password_changed": N_("Password changed"),
    "password_reset": N_("Password reset"), "mfa_enrolled": N_("Second factor set up"),
    "mfa_reset": N_("Second factor reset"), "sessions_revoked": N_("Sessions ended"),
    "records_read": N_("Records read"), "document_viewed": N_("Document viewed"),
    "document_downloaded": N_("Document downloaded"), "document_uploaded": N_("Document uploaded"),
    "document_access_denied": N_("Document access refused"), "break_glass": N_("Break-glass access"),
    "clearance_set": N_("Clearance set"), "permissions_changed": N_("Permissions changed"),
    "group_member_added": N_("Group member added"), "group_member_removed": N_("Group member removed"),
    "account_created": N_("Account created"), "account_deactivated": N_("Account deactivated"),
    "audit_log_read": N_("Audit log searched"), "audit_log_exported": N_("Audit log exported"),
    "audit_review_run": N_("Anomaly review run"), "audit_finding_dismissed": N_("Finding dismissed"),
    "audit_finding_rectification": N_("Finding sent for rectification"),
}
OBJECT_TYPES = {"user": N_("User"), "process_instance": N_("Process instance"), "task": N_("Task"),
                "document": N_("Document"), "group": N_("Group"), "several": N_("Several records"),
                "audit_log": N_("Audit log")}


def action_name(code: str) -> str:
    return str(ACTIONS[code]) if code in ACTIONS else code


def object_name(code: str | None) -> str:
    return str(OBJECT_TYPES[code]) if code in OBJECT_TYPES else (code or "")


@dataclass
class Filters:
    person: str | None = None  # username of the actor
    action: list[str] = field(default_factory=list)
    object_type: str | None = None
    object_id: str | None = None
    department: str | None = None  # code of the actor's department
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    address: str | None = None
    q: str | None = None  # words in the detail

    def as_dict(self) -> dict:
        """The filters as given, for the audit row of the read and for links."""
        out = {k: v for k, v in {
            "person": self.person, "action": ",".join(self.action) or None, "object_type": self.object_type,
            "object_id": self.object_id, "department": self.department, "address": self.address, "q": self.q,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None}.items() if v}
        return out


def _text(args, name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    value = str(value).strip()
    if len(value) > MAX_TEXT:
        raise Invalid(_("Invalid field: %(fields)s", fields=name),
                      [{"field": name, "message": _("at most %(n)s characters", n=MAX_TEXT)}])
    return value or None


def _moment(args, name: str, end: bool) -> datetime | None:
    """A day (`2026-12-03`, the whole Beijing day) or a moment (ISO 8601; without an offset, Beijing time)."""
    value = _text(args, name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(0), tzinfo=PLATFORM_TZ)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=PLATFORM_TZ)
    except ValueError:
        raise Invalid(_("Invalid field: %(fields)s", fields=name), [{"field": name, "message": _(
            "a date such as 2026-12-03 or a time such as 2026-12-03T09:30")}]) from None
    return moment


def parse_filters(args) -> Filters:
    """Filters from query arguments (API and page alike); a bad one is a 422 naming the field."""
    filters = Filters(
        person=_text(args, "person"), object_type=_text(args, "object_type"), object_id=_text(args, "object_id"),
        department=_text(args, "department"), address=_text(args, "address"), q=_text(args, "q"),
        action=[a.strip() for a in (_text(args, "action") or "").split(",") if a.strip()],
        since=_moment(args, "since", end=False), until=_moment(args, "until", end=True))
    if filters.since and filters.until and filters.since >= filters.until:
        raise Invalid(_("Invalid field: %(fields)s", fields="until"),
                      [{"field": "until", "message": _("must be after the start")}])
    return filters


def _detail_contains(words: str):
    """Words in the detail, whichever way the JSON holds non-ASCII text (as is, or \\u-escaped)."""
    body = cast(AuditEvent.detail, Text)
    escaped = json.dumps(words)[1:-1]
    clauses = [body.icontains(words, autoescape=True)]
    if escaped != words:
        clauses.append(body.icontains(escaped, autoescape=True))
    return or_(*clauses)


def _query(f: Filters):
    actor = aliased(User)
    home = aliased(Department)
    query = (select(AuditEvent, actor.username, actor.full_name, home.code, home.name)
             .outerjoin(actor, actor.id == AuditEvent.actor_id).outerjoin(home, home.id == actor.department_id))
    if f.person:
        query = query.where(actor.username == f.person)
    if f.action:
        query = query.where(AuditEvent.action.in_(f.action))
    if f.object_type:
        query = query.where(AuditEvent.object_type == f.object_type)
    if f.object_id:
        query = query.where(AuditEvent.object_id == f.object_id)
    if f.department:
        query = query.where(home.code == f.department)
    if f.since:
        query = query.where(AuditEvent.at >= f.since)
    if f.until:
        query = query.where(AuditEvent.at < f.until)
    if f.address:
        query = query.where(AuditEvent.client_addr == f.address)
    if f.q:
        query = query.where(_detail_contains(f.q))
    return query


@dataclass(frozen=True)
class Row:
    id: int
    at: datetime
    username: str | None
    full_name: str | None
    department: str | None
    department_name: str | None
    action: str
    action_name: str
    object_type: str
    object_name: str
    object_id: str | None
    address: str | None
    detail: dict


def _row(event: AuditEvent, username, full_name, dept_code, dept_name) -> Row:
    return Row(event.id, event.at, username, full_name, dept_code, dept_name, event.action, action_name(event.action),
               event.object_type, object_name(event.object_type), event.object_id, event.client_addr,
               event.detail or {})


def require_reader(user: User, action: str = "read") -> User:
    return policy.authorize(user, action, "audit_log", message=_("Only auditors may read the audit log."))


def rows(s: Session, f: Filters, offset: int = 0, limit: int = MAX_PAGE) -> tuple[list[Row], int]:
    query = _query(f)
    total = s.scalar(select(func.count()).select_from(query.with_only_columns(AuditEvent.id).subquery()))
    found = s.execute(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    return [_row(*r) for r in found], total


def by_ids(s: Session, ids: list[int]) -> list[Row]:
    """Given rows (a finding's evidence), oldest first."""
    if not ids:
        return []
    query = _query(Filters()).where(AuditEvent.id.in_(ids)).order_by(AuditEvent.id)
    return [_row(*r) for r in s.execute(query).all()]


def search(s: Session, reader: User, f: Filters, offset: int = 0, limit: int = 50) -> tuple[list[Row], int]:
    """One page of the log, newest first, for an auditor; the search is audited and committed."""
    require_reader(reader)
    found, total = rows(s, f, offset, min(limit, MAX_PAGE))
    audit.record(s, "audit_log_read", "audit_log", None, actor_id=reader.id,
                 detail={"filters": f.as_dict(), "offset": offset, "rows": len(found), "total": total})
    s.commit()
    return found, total


COLUMNS = [("id", N_("No.")), ("at", N_("Time")), ("username", N_("Username")), ("full_name", N_("Full name")),
           ("department_name", N_("Department")), ("action_name", N_("Action")), ("action", N_("Action code")),
           ("object_name", N_("Object type")), ("object_id", N_("Object")), ("address", N_("Address")),
           ("detail", N_("Detail"))]


def export(s: Session, reader: User, f: Filters, fmt: str) -> tuple[bytes, str]:
    """The matching rows (at most MAX_EXPORT, newest first) as CSV or XLSX; audited and committed."""
    require_reader(reader, "export")
    if fmt not in exports.MIMETYPES:
        raise Invalid(_("Invalid field: %(fields)s", fields="format"), [{"field": "format", "message": "csv | xlsx"}])
    found, total = rows(s, f, 0, MAX_EXPORT)
    table = [{**row.__dict__, "at": row.at.astimezone(PLATFORM_TZ).strftime("%Y-%m-%d %H:%M:%S"),
              "detail": json.dumps(row.detail, ensure_ascii=False, sort_keys=True, default=str)} for row in found]
    body = exports.render(table, fmt, COLUMNS)
    audit.record(s, "audit_log_exported", "audit_log", None, actor_id=reader.id,
                 detail={"filters": f.as_dict(), "format": fmt, "rows": len(found), "total": total})
    s.commit()
    return body


def departments(s: Session) -> list[Department]:
    return list(s.scalars(select(Department).order_by(Department.code)))


# --- the log of reads ----------------------------------------------------------------------------

_READS = "inkless_reads"


def note_read(object_type: str, object_id) -> None:
    """Remember that this request hands out a record; `_flush_reads` writes one row for all of them."""
    if has_request_context():
        g.setdefault(_READS, {}).setdefault(object_type, []).append(str(object_id))


def _flush_reads(response):
    reads = g.pop(_READS, None)
    user = getattr(g, "user", None)
    if (not reads or user is None or response.status_code >= 400 or request.method not in ("GET", "HEAD")
            or not current_app.config["INKLESS"].read_audit):
        return response
    s = db.session()
    if not db.end_reads(s):
        return response  # the request wrote and left it uncommitted: nothing to add to its work
    if s.bind.dialect.name == "postgresql":
        # A read's row need not wait for the disk: a crash loses at most the last moment's reads,
        # never a change (which commits with its own row); the chain stays whole either way.
        s.execute(text("SET LOCAL synchronous_commit = off"))
    objects = {kind: sorted(set(ids)) for kind, ids in reads.items()}
    kind, ids = next(iter(objects.items())) if len(objects) == 1 else ("several", [])
    audit.record(s, READ_ACTION, kind, ids[0] if len(ids) == 1 else None, actor_id=user.id,
                 detail={"objects": objects, "path": request.path[:200]})
    s.commit()
    return response


def init_app(app: Flask) -> None:
    app.after_request(_flush_reads)
