"""Archiving, deletion with retention, and purging (R-DOC-3, R-SEC-8).

Archiving moves documents older than the policy age (by document date, else upload date) to
`archived`: read-only, still listed and searchable. Deleting is soft: the document leaves every
list but its owner's and administrators' trash, and can be restored until `purge_after`; purging
then removes its rows and the blobs nothing else refers to. The audit log keeps every event.
"""
from __future__ import annotations

import time
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from .. import audit
from ..errors import Conflict
from ..models import User, utcnow
from .library import document_for
from .models import (
    DataKey,
    Document,
    DocumentPublication,
    DocumentSearch,
    DocumentShare,
    DocumentVersion,
    StoredObject,
)
from .objects import after_commit, blob_store
from .settings import current as settings


def delete(s: Session, user: User, document_id: int) -> Document:
    document, _rights = document_for(s, user, document_id, "delete", need="manage")
    if document.state == "archived":
        raise Conflict(_("The document is archived and read-only."))
    if document.state == "deleted":
        raise Conflict(_("The document is already deleted."))
    now = utcnow()
    document.state = "deleted"
    document.deleted_at = now
    document.purge_after = now + timedelta(days=settings().retention_days)
    document.published_at = None
    document.audience = None
    audit.record(s, "document_deleted", "document", document.id, actor_id=user.id,
                 detail={"version": document.current_version, "purge_after": document.purge_after.isoformat()})
    return document


def undelete(s: Session, user: User, document_id: int) -> Document:
    document, _rights = document_for(s, user, document_id, "undelete", need="manage")
    if document.state != "deleted":
        raise Conflict(_("The document is not deleted."))
    document.state = "active"
    document.deleted_at = None
    document.purge_after = None
    audit.record(s, "document_undeleted", "document", document.id, actor_id=user.id,
                 detail={"version": document.current_version})
    return document


def archive_due(s: Session, actor: User | None, older_than_days: int | None = None) -> list[int]:
    """Archive every active document older than the policy age; one audit event per document."""
    days = settings().archive_after_days if older_than_days is None else older_than_days
    cutoff = utcnow() - timedelta(days=days)
    due = s.scalars(select(Document).where(
        Document.state == "active",
        or_(Document.document_date < cutoff.date(),
            and_(Document.document_date.is_(None), Document.created_at < cutoff)))).all()
    now = utcnow()
    for document in due:
        document.state = "archived"
        document.archived_at = now
        audit.record(s, "document_archived", "document", document.id, actor_id=actor.id if actor else None,
                     detail={"version": document.current_version, "policy_days": days})
    return [d.id for d in due]


def purge_expired(s: Session, actor: User | None) -> list[int]:
    """Remove deleted documents whose retention has passed, and blobs left without a reference."""
    store = blob_store()
    expired = s.scalars(select(Document).where(Document.state == "deleted", Document.purge_after <= utcnow())).all()
    purged = []
    for document in expired:
        object_ids = set(s.scalars(select(DocumentVersion.object_id).where(DocumentVersion.document_id == document.id)))
        for model in (DocumentShare, DocumentPublication, DocumentSearch, DocumentVersion):
            s.execute(sql_delete(model).where(model.document_id == document.id))
        for obj in s.scalars(select(StoredObject).where(StoredObject.id.in_(object_ids))).all():
            if s.scalar(select(func.count()).where(DocumentVersion.object_id == obj.id)) == 0:
                s.delete(obj)
                after_commit(s, lambda name=obj.name, algorithm=obj.algorithm: store.remove(name, algorithm))
        s.flush()
        s.execute(sql_delete(DataKey).where(DataKey.document_id == document.id))
        audit.record(s, "document_purged", "document", document.id, actor_id=actor.id if actor else None,
                     detail={"version": document.current_version, "deleted_at": document.deleted_at.isoformat()})
        s.delete(document)
        purged.append(document.id)
    return purged


def sweep_orphans(s: Session, grace_seconds: int = 24 * 3600) -> int:
    """Blobs without a row (a crash between writing a blob and committing it), after a grace period."""
    referenced = set(s.scalars(select(StoredObject.name)))
    return blob_store().sweep(referenced, time.time() - grace_seconds)
