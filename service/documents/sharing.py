"""Shares and publication (R-DOC-4).

A share grants `read` or `edit` to a user or a whole department, optionally until a date; the
owner and the administrators of the document's department manage them. Publication (the last
step of file_publication.bpmn) opens a document to an audience: its department or everyone.
Mandatory access control still applies to every grantee. A 核心机密 document is never shared
nor published, whoever asks: refused here with a clear message, and by the database's CHECK
constraints if anything got past this module.
"""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..errors import Conflict, Invalid, NotFound
from ..models import Department, User, utcnow
from . import access
from .library import document_for, version_of
from .models import (
    AUDIENCES,
    CORE_SECRET,
    PERMISSIONS,
    Document,
    DocumentPublication,
    DocumentShare,
    level_name,
)


class CoreSecretNotShareable(Conflict):
    code = "core_secret_not_shareable"


def _refuse_core_secret(document: Document) -> None:
    if document.security_level == CORE_SECRET:
        raise CoreSecretNotShareable(_("A 核心机密 (core secret) document can never be shared or published."))


def share(s: Session, user: User, document_id: int, *, username: str | None, department: str | None,
          permission: str, expires_at: datetime | None) -> DocumentShare:
    document, _rights = document_for(s, user, document_id, "share", need="manage")
    if document.security_level == CORE_SECRET:
        audit.record(s, "document_share_refused", "document", document.id, actor_id=user.id,
                     detail={"version": document.current_version, "reason": "core secret",
                             "grantee": username or department})
        s.commit()
        _refuse_core_secret(document)
    if document.state == "deleted":
        raise Conflict(_("The document is deleted; restore it from the trash first."))
    if permission not in PERMISSIONS:
        raise Invalid(_("Invalid field: %(fields)s", fields="permission"),
                      [{"field": "permission", "message": "read | edit"}])
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid(_("Invalid field: %(fields)s", fields="expires_at"),
                      [{"field": "expires_at", "message": _("must be in the future")}])
    if bool(username) == bool(department):
        raise Invalid(_("Share with one user or one department."),
                      [{"field": "username", "message": _("give either username or department")}])
    grantee_user = grantee_department = None
    if username:
        grantee_user = s.scalar(select(User).where(User.username == username, User.active.is_(True)))
        if grantee_user is None:
            raise Invalid(_("User %(name)s not found.", name=username), [{"field": "username", "message": _("unknown")}])
        if grantee_user.id == document.owner_id:
            raise Invalid(_("The owner already has every right."), [{"field": "username", "message": _("owner")}])
        if access.clearance(s, grantee_user) < document.security_level:
            # A grant the user could never use (mandatory access control) is refused outright.
            raise Invalid(_("%(name)s's clearance is below the document's security level (%(level)s).",
                            name=username, level=level_name(document.security_level)),
                          [{"field": "username", "message": _("clearance too low")}])
        existing = s.scalar(select(DocumentShare).where(DocumentShare.document_id == document.id,
                                                        DocumentShare.user_id == grantee_user.id))
    else:
        grantee_department = s.scalar(select(Department).where(Department.code == department))
        if grantee_department is None:
            raise Invalid(_("Invalid field: %(fields)s", fields="department"),
                          [{"field": "department", "message": _("unknown department")}])
        existing = s.scalar(select(DocumentShare).where(DocumentShare.document_id == document.id,
                                                        DocumentShare.department_id == grantee_department.id))
    row = existing or DocumentShare(document_id=document.id, user_id=grantee_user.id if grantee_user else None,
                                    department_id=grantee_department.id if grantee_department else None,
                                    created_by=user.id)
    row.security_level = document.security_level
    row.permission = permission
    row.expires_at = expires_at
    if existing is None:
        s.add(row)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError:
        # The database's own guard: a concurrent reclassification to 核心机密, or a concurrent share.
        if s.scalar(select(Document.security_level).where(Document.id == document.id)) == CORE_SECRET:
            raise CoreSecretNotShareable(
                _("A 核心机密 (core secret) document can never be shared or published.")) from None
        raise Conflict(_("The shares changed at the same time; reload and try again.")) from None
    audit.record(s, "document_shared", "document", document.id, actor_id=user.id, detail={
        "version": document.current_version, "share": row.id, "user": username, "department": department,
        "permission": permission, "expires_at": expires_at.isoformat() if expires_at else None})
    return row


def unshare(s: Session, user: User, document_id: int, share_id: int) -> None:
    document, _rights = document_for(s, user, document_id, "unshare", need="manage")
    row = s.get(DocumentShare, share_id)
    if row is None or row.document_id != document.id:
        raise NotFound(_("Share not found."))
    s.delete(row)
    audit.record(s, "document_unshared", "document", document.id, actor_id=user.id,
                 detail={"version": document.current_version, "share": share_id, "user_id": row.user_id,
                         "department_id": row.department_id})


def shares(s: Session, user: User, document_id: int) -> list[DocumentShare]:
    document, _rights = document_for(s, user, document_id, "list_shares", need="manage")
    return s.scalars(select(DocumentShare).where(DocumentShare.document_id == document.id)
                     .order_by(DocumentShare.id)).all()


# --- publication (services of file_publication.bpmn) --------------------------------------------

def check_publication(s: Session, author: User | None, instance_id: int | None, document_id, audience) -> dict:
    """May `author` submit this document for publication? Records which version the reviewers
    review and lets them read it while their task is open."""
    problem = None
    document = s.get(Document, int(document_id)) if str(document_id or "").isdigit() else None
    rights = access.rights(s, author, document) if author is not None and document is not None else None
    if rights is None or not rights.read:
        problem = f"文件 {document_id} 不存在或您无权查看。"
    elif not rights.edit:
        problem = "只有文件的所有者或有编辑权限的人可以提交发布。"
    elif document.security_level == CORE_SECRET:
        problem = "核心机密文件不得发布或共享。"
    elif document.state != "active":
        problem = "已归档或已删除的文件不能发布。"
    elif audience not in AUDIENCES:
        problem = "请选择发布范围(本部门或全平台)。"
    if problem:
        return {"ok": False, "problem": problem}
    row = s.scalar(select(DocumentPublication).where(DocumentPublication.instance_id == instance_id))
    if row is None:
        row = DocumentPublication(document_id=document.id, instance_id=instance_id, requested_by=author.id)
        s.add(row)
    row.document_id = document.id
    row.version_number = document.current_version
    row.audience = audience
    department = s.get(Department, document.department_id)
    audit.record(s, "document_submitted_for_publication", "document", document.id, actor_id=author.id,
                 detail={"version": document.current_version, "audience": audience, "instance": instance_id})
    return {"ok": True, "problem": "", "document_id": document.id, "version": document.current_version,
            "title": document.title, "security_level": level_name(document.security_level),
            "security_rank": document.security_level, "department": department.code, "audience": audience}


def publish(s: Session, actor_id: int | None, instance_id: int | None, document_id: int, version: int,
            audience: str) -> dict:
    """Release the reviewed version to its audience; refuses if the document changed meanwhile."""
    document = s.get(Document, int(document_id))
    problem = None
    if document is None or document.state != "active":
        problem = "文件已被删除或归档,未发布。"
    elif document.current_version != int(version):
        problem = f"审核期间文件已更新为第 {document.current_version} 版,请重新提交发布。"
    elif document.security_level == CORE_SECRET:
        problem = "核心机密文件不得发布或共享。"
    if problem:
        return {"published": False, "problem": problem}
    version_of(s, document, document.current_version)
    document.published_at = utcnow()
    document.audience = audience
    row = s.scalar(select(DocumentPublication).where(DocumentPublication.instance_id == instance_id))
    if row is not None:
        row.published_at = document.published_at
    audit.record(s, "document_published", "document", document.id, actor_id=actor_id,
                 detail={"version": document.current_version, "audience": audience, "instance": instance_id})
    return {"published": True, "problem": "", "published_at": document.published_at.isoformat()}
