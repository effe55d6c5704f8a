"""Who may do what with a document (R-DOC-4, R-SEC-4, R-ACC-3).

Mandatory access control comes first: a document above a user's clearance does not exist for
them — not in lists, not in search, not by id — whatever shares, roles or tasks they hold. The
one exception is an unexpired break-glass grant (break_glass.py): read-only, audited, one
document, for a system administrator who gave a reason. Within their clearance a user reads a document they own, one shared
with them or their department (unexpired), one published to an audience they belong to, one they
review in an open publication task, and any document of a department they administer (the
department's administrators and system administrators: `administer` in service/policy.py). Editing (new
versions, restore) needs ownership, an `edit` share or administration; managing (shares,
deletion) ownership or administration.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .. import policy
from ..models import OpenTask, TaskCandidate, User, utcnow
from .models import (
    DEFAULT_CLEARANCE,
    BreakGlassGrant,
    Document,
    DocumentPublication,
    DocumentShare,
    UserClearance,
)


def clearance(s: Session, user: User) -> int:
    level = s.scalar(select(UserClearance.level).where(UserClearance.user_id == user.id))
    return DEFAULT_CLEARANCE if level is None else level


@dataclass
class Rights:
    read: bool = False
    edit: bool = False
    manage: bool = False

    def as_dict(self) -> dict:
        return {"read": self.read, "edit": self.edit, "manage": self.manage}


def _shared_with(user: User) -> tuple:
    return (or_(DocumentShare.user_id == user.id, DocumentShare.department_id == user.department_id),
            or_(DocumentShare.expires_at.is_(None), DocumentShare.expires_at > utcnow()))


def _published_to(user: User):
    return and_(Document.published_at.is_not(None),
                or_(Document.audience == "all",
                    and_(Document.audience == "department", Document.department_id == user.department_id)))


def _reviewing(user: User):
    """Documents in publication instances where the user has an open task (R-WF-2 reviewers)."""
    offered = select(TaskCandidate.task_id).where(
        or_(TaskCandidate.user_id == user.id, TaskCandidate.group_code.in_(user.groups or {""})))
    instances = select(OpenTask.instance_id).where(
        or_(OpenTask.assignee_id == user.id, and_(OpenTask.assignee_id.is_(None), OpenTask.id.in_(offered))))
    return select(DocumentPublication.document_id).where(DocumentPublication.instance_id.in_(instances))


def _administered(user: User):
    return policy.scope_filter(user, "administer", "document")


def _broken_glass(user: User):
    """Documents the user opened by break-glass (break_glass.py), while the grant lasts."""
    return select(BreakGlassGrant.document_id).where(BreakGlassGrant.user_id == user.id,
                                                     BreakGlassGrant.expires_at > utcnow())


def readable(s: Session, user: User, include_deleted: bool = False):
    """A WHERE clause over Document: what `user` may see (lists, search, lookups)."""
    shared = select(DocumentShare.document_id).where(*_shared_with(user))
    visible = or_(Document.owner_id == user.id, Document.id.in_(shared), _published_to(user),
                  Document.id.in_(_reviewing(user)), _administered(user))
    if include_deleted:
        # The trash shows only what the user could restore: their own and their department's.
        state = or_(Document.state != "deleted", Document.owner_id == user.id, _administered(user))
    else:
        state = Document.state != "deleted"
    cleared = and_(Document.security_level <= clearance(s, user), visible)
    return and_(state, or_(cleared, Document.id.in_(_broken_glass(user))))


def rights(s: Session, user: User, document: Document) -> Rights:
    if document.security_level > clearance(s, user):
        # Above clearance nothing but an unexpired break-glass grant opens it, and only to read.
        glass = s.scalar(_broken_glass(user).where(BreakGlassGrant.document_id == document.id).limit(1))
        return Rights(read=glass is not None and document.state != "deleted")
    owner_or_admin = document.owner_id == user.id or policy.allows(user, "administer", "document", document)
    if owner_or_admin:
        return Rights(read=True, edit=True, manage=True)
    if document.state == "deleted":
        return Rights()
    shares = s.scalars(select(DocumentShare.permission).where(
        DocumentShare.document_id == document.id, *_shared_with(user))).all()
    edit = "edit" in shares and document.state == "active"
    read = bool(shares) or s.scalar(select(Document.id).where(
        Document.id == document.id, or_(_published_to(user), Document.id.in_(_reviewing(user))))) is not None
    return Rights(read=read, edit=edit)
