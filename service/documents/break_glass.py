"""Break-glass: a system administrator's emergency read access to one document above their
clearance (R-SEC-4, R-SEC-7, R-SEC-10).

The role alone never opens a 核心机密 document (mandatory access control, access.py). In an
emergency a system administrator may break the glass: with a written reason they get read-only
access to that one document for `GRANT_TTL`. The act is audited with its reason, and the head of
the owner's department is told at once, so the access is attributable and cannot go unnoticed.
"""
from __future__ import annotations

from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from .. import audit, policy
from ..errors import Conflict, Invalid, NotFound
from ..models import Department, Notification, User, utcnow
from .access import clearance
from .models import BreakGlassGrant, Document, level_name

GRANT_TTL = timedelta(hours=1)
MAX_REASON = 2000


def break_glass(s: Session, user: User, document_id: int, reason: str) -> BreakGlassGrant:
    policy.authorize(user, "break_glass", "document",
                     message=_("Only system administrators may break the glass, and only with a reason."))
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(_("Invalid field: %(fields)s", fields="reason"),
                      [{"field": "reason", "message": _("required (at most 2000 characters)")}])
    document = s.get(Document, document_id)
    if document is None or document.state == "deleted":
        raise NotFound(_("Document not found."))
    if document.security_level <= clearance(s, user):
        raise Conflict(_("You may already read this document; break-glass access is not needed."))
    now = utcnow()
    grant = BreakGlassGrant(document_id=document.id, user_id=user.id, reason=reason, granted_at=now,
                            expires_at=now + GRANT_TTL)
    s.add(grant)
    s.flush()
    notified = _tell_the_head(s, user, document, reason)
    audit.record(s, "break_glass", "document", document.id, actor_id=user.id, detail={
        "reason": reason, "grant": grant.id, "level": level_name(document.security_level),
        "expires_at": grant.expires_at.isoformat(), "notified": notified})
    return grant


def _tell_the_head(s: Session, user: User, document: Document, reason: str) -> list[int]:
    """Notify the head of the owner's department (the owner when it has none). The title names
    the document by number only: the head may not be cleared for its title."""
    owner = s.get(User, document.owner_id)
    department = s.get(Department, owner.department_id) if owner is not None else None
    head = s.get(User, department.head_id) if department is not None and department.head_id else None
    recipient = head if head is not None and head.active else owner
    if recipient is None or not recipient.active:
        return []
    body = _("%(name)s (%(username)s) opened document #%(id)s (%(level)s) by break-glass until %(until)s. "
             "Reason: %(reason)s", name=user.full_name, username=user.username, id=document.id,
             level=level_name(document.security_level), until=(utcnow() + GRANT_TTL).isoformat(timespec="minutes"),
             reason=reason)
    s.add(Notification(user_id=recipient.id, kind="break_glass", title=f"#{document.id}", body=body))
    return [recipient.id]
