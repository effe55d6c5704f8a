"""Documents and their versions: upload, new version, restore, read, download, history, diff
(R-DOC-1, R-DOC-2, R-DOC-3, R-DOC-5), each access audited with user, document, version and client
address (R-SEC-4, R-SEC-8).

A request that carries a file runs in phases so that no database transaction stays open while
bytes stream in or text is extracted (SQLite's single write lock would stall every other writer
for the length of a 1 GB upload): read and check → commit → receive the body → check the
metadata → commit → place the blob and extract text → write the rows, index and audit record in
one transaction (the caller's unit of work).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from typing import BinaryIO

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit, policy
from ..errors import ApiError, Conflict, Forbidden, Invalid, NotFound
from ..models import Department, User, utcnow
from . import access, search
from .models import (
    CORE_SECRET,
    ENCRYPTED_FROM,
    LEVELS,
    BusinessType,
    Document,
    DocumentShare,
    DocumentVersion,
    StoredObject,
    level_name,
    parse_level,
)
from .objects import (
    PendingKey,
    discard,
    open_object,
    pending_key,
    prepare,
    receive,
    seal_plain_versions,
    store_object,
    words_of,
)

KEYWORD_SEPARATORS = re.compile(r"[,，、;；\n]+")


# --- metadata ---------------------------------------------------------------------------------

@dataclass
class Metadata:
    title: str
    abstract: str
    keywords: list[str]
    business_type_id: int | None
    department_id: int
    document_date: date | None
    security_level: int

    @classmethod
    def of(cls, row) -> Metadata:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def apply(self, row) -> None:
        for f in fields(self):
            setattr(row, f.name, getattr(self, f.name))


def read_metadata(s: Session, user: User, form: dict[str, str], base: Metadata | None) -> Metadata:
    """Check the submitted metadata (R-DOC-1: title, abstract and keywords required); a new
    version inherits what it does not send. 422 names every bad field; 403 if the level is above
    the submitter's clearance."""
    errors: list[dict] = []

    def given(name: str) -> str | None:
        value = form.get(name)
        return None if value is None else value.strip()

    def text(name: str, limit: int, inherited):
        value = given(name)
        if value is None or (value == "" and base is not None):
            if inherited is None:
                errors.append({"field": name, "message": _("required")})
            return inherited
        if not value:
            errors.append({"field": name, "message": _("required")})
        elif len(value) > limit:
            errors.append({"field": name, "message": _("at most %(n)s characters", n=limit)})
        return value

    title = text("title", 200, base.title if base else None)
    abstract = text("abstract", 4000, base.abstract if base else None)
    keywords = base.keywords if base else None
    if given("keywords"):
        keywords = list(dict.fromkeys(k.strip() for k in KEYWORD_SEPARATORS.split(given("keywords")) if k.strip()))
        if len(keywords) > 20 or any(len(k) > 50 for k in keywords):
            errors.append({"field": "keywords", "message": _("at most 20 keywords of at most 50 characters")})
    if not keywords:
        errors.append({"field": "keywords", "message": _("required")})

    business_type_id = base.business_type_id if base else None
    if given("business_type") is not None:
        business_type_id = None
        if given("business_type"):
            business_type_id = s.scalar(select(BusinessType.id).where(BusinessType.code == given("business_type")))
            if business_type_id is None:
                errors.append({"field": "business_type", "message": _("unknown business type")})

    department_id = base.department_id if base else user.department_id
    if given("department"):
        department = s.scalar(select(Department).where(Department.code == given("department")))
        if department is None:
            errors.append({"field": "department", "message": _("unknown department")})
        elif department.id != department_id and department.id != user.department_id \
                and not policy.covers_department(user, "administer", "document", department.id):
            errors.append({"field": "department", "message": _("only your own department")})
        else:
            department_id = department.id

    document_date = base.document_date if base else None
    if given("document_date") is not None:
        try:
            document_date = date.fromisoformat(given("document_date")) if given("document_date") else None
        except ValueError:
            errors.append({"field": "document_date", "message": _("a date such as 2026-03-31")})

    level = base.security_level if base else None
    if given("security_level") or base is None:
        level = parse_level(given("security_level"))
        if level is None:
            errors.append({"field": "security_level", "message": _("one of %(levels)s", levels="/".join(LEVELS))})
    if errors:
        raise Invalid(_("Invalid field: %(fields)s", fields=", ".join(dict.fromkeys(e["field"] for e in errors))),
                      errors)
    if level > access.clearance(s, user):
        # Mandatory access control: nobody classifies above their own clearance.
        raise Forbidden(_("You cannot classify a document above your own clearance (%(level)s).",
                          level=level_name(access.clearance(s, user))),
                        [{"field": "security_level", "message": _("above your clearance")}])
    return Metadata(title, abstract, keywords, business_type_id, department_id, document_date, level)


def change_note(form: dict[str, str]) -> str:
    note = (form.get("change_note") or "").strip()
    if not note or len(note) > 2000:
        raise Invalid(_("Every new version needs a change note."),
                      [{"field": "change_note", "message": _("required (at most 2000 characters)")}])
    return note


# --- lookup and denial ------------------------------------------------------------------------

def deny(s: Session, user: User, document: Document, action: str, reason: str) -> None:
    """Record a refused access and commit it: the request's own transaction rolls back."""
    s.rollback()
    audit.record(s, "document_access_denied", "document", document.id, actor_id=user.id,
                 detail={"action": action, "reason": reason, "level": level_name(document.security_level)})
    s.commit()


def document_for(s: Session, user: User, document_id: int, action: str, need: str = "read") -> tuple[Document, access.Rights]:
    """The document if `user` may `need` it; a document the user may not read is "not found"
    (its existence is not revealed), and the attempt is audited."""
    document = s.get(Document, document_id)
    if document is None:
        raise NotFound(_("Document not found."))
    rights = access.rights(s, user, document)
    if not rights.read:
        above = document.security_level > access.clearance(s, user)
        deny(s, user, document, action, "above clearance" if above else "no grant")
        raise NotFound(_("Document not found."))
    if (need == "edit" and not rights.edit) or (need == "manage" and not rights.manage):
        deny(s, user, document, action, f"no {need} right")
        raise Forbidden(_("You may read this document but not change it.") if need == "edit"
                        else _("Only the owner or an administrator of its department may do this."))
    return document, rights


def require_active(document: Document) -> None:
    if document.state == "archived":
        raise Conflict(_("The document is archived and read-only."))
    if document.state == "deleted":
        raise Conflict(_("The document is deleted; restore it from the trash first."))


def version_of(s: Session, document: Document, number: int | None) -> DocumentVersion:
    version = s.scalar(select(DocumentVersion).where(
        DocumentVersion.document_id == document.id,
        DocumentVersion.number == (number or document.current_version)))
    if version is None:
        raise NotFound(_("Version %(n)s not found.", n=number))
    return version


# --- operations --------------------------------------------------------------------------------

def _version_row(document: Document, number: int, meta: Metadata, obj: StoredObject, file_name: str,
                 content_type: str, note: str, user: User, restored_from: int | None = None) -> DocumentVersion:
    version = DocumentVersion(document_id=document.id, number=number, object_id=obj.id, file_name=file_name,
                              content_type=content_type, size=obj.size, change_note=note, created_by=user.id,
                              restored_from=restored_from)
    meta.apply(version)
    return version


def upload(s: Session, user: User, stream: BinaryIO, content_type: str | None) -> Document:
    """R-DOC-1: a new document from a multipart upload (file + metadata)."""
    incoming, pending = receive(s, stream, content_type, None)
    try:
        if incoming.received is None:
            raise Invalid(_("The file is missing."), [{"field": "file", "message": _("required")}])
        meta = read_metadata(s, user, incoming.fields, None)
        s.commit()
        prepared = prepare(incoming, pending, meta.security_level)
    except BaseException as e:
        discard(incoming)
        if isinstance(e, ApiError):
            e.submitted = incoming.fields  # so a page can show the form again as it was filled in
        raise
    document = Document(owner_id=user.id, current_version=1)
    meta.apply(document)
    s.add(document)
    s.flush()
    obj = store_object(s, document, prepared.received, pending)
    note = (incoming.fields.get("change_note") or "").strip() or "首次上传"
    s.add(_version_row(document, 1, meta, obj, prepared.file_name, prepared.content_type, note, user))
    search.index(s, document, 1, prepared.words, meta.security_level < ENCRYPTED_FROM, prepared.note)
    audit.record(s, "document_uploaded", "document", document.id, actor_id=user.id, detail={
        "version": 1, "level": level_name(meta.security_level), "size": obj.size,
        "content_type": prepared.content_type, "algorithm": obj.algorithm})
    return document


def _next_version(s: Session, user: User, document: Document, meta: Metadata, obj: StoredObject, file_name: str,
                  content_type: str, note: str, pending: PendingKey, restored_from: int | None = None) -> DocumentVersion:
    if meta.security_level == CORE_SECRET and document.security_level != CORE_SECRET:
        if s.scalar(select(func.count()).where(DocumentShare.document_id == document.id)):
            raise Conflict(_("A 核心机密 document can never be shared: remove its shares before raising it to 核心机密."))
    if meta.security_level >= ENCRYPTED_FROM > document.security_level:
        # The new version may keep the current content: it then refers to the sealed copy.
        obj = seal_plain_versions(s, document, pending).get(obj.id, obj)
    number = document.current_version + 1
    version = _version_row(document, number, meta, obj, file_name, content_type, note, user, restored_from)
    s.add(version)
    was_published = document.published_at is not None
    meta.apply(document)
    document.current_version = number
    document.updated_at = utcnow()
    # What was published is the reviewed version; a new one goes through publication again.
    document.published_at = None
    document.audience = None
    try:
        s.flush()
    except IntegrityError:
        raise Conflict(_("Someone else added a version at the same time; reload and try again.")) from None
    if was_published:
        audit.record(s, "document_unpublished", "document", document.id, actor_id=user.id,
                     detail={"version": number, "reason": "new version"})
    return version


def add_version(s: Session, user: User, document_id: int, stream: BinaryIO, content_type: str | None) -> DocumentVersion:
    """R-DOC-5: every change is a new version with a change note; nothing is overwritten."""
    document, _rights = document_for(s, user, document_id, "add_version", need="edit")
    require_active(document)
    incoming, pending = receive(s, stream, content_type, document)
    try:
        note = change_note(incoming.fields)
        current = version_of(s, document, None)
        meta = read_metadata(s, user, incoming.fields, Metadata.of(current))
        s.commit()
        if incoming.received is not None:
            prepared = prepare(incoming, pending, meta.security_level)
            file_name, ctype, words, text_note = prepared.file_name, prepared.content_type, prepared.words, prepared.note
        else:  # metadata only: the content stays, its index entry is rebuilt for the new level
            prepared = None
            file_name, ctype = current.file_name, current.content_type
            words, text_note = words_of(s, s.get(StoredObject, current.object_id), ctype, meta.security_level)
    except BaseException as e:
        discard(incoming)
        if isinstance(e, ApiError):
            e.submitted = incoming.fields  # so a page can show the form again as it was filled in
        raise
    document = s.get(Document, document_id, populate_existing=True,
                     with_for_update=s.bind.dialect.name == "postgresql")
    require_active(document)
    if prepared is not None:
        obj = store_object(s, document, prepared.received, pending)
    else:
        obj = s.get(StoredObject, current.object_id)
    version = _next_version(s, user, document, meta, obj, file_name, ctype, note, pending)
    search.index(s, document, version.number, words, meta.security_level < ENCRYPTED_FROM, text_note)
    audit.record(s, "document_version_added", "document", document.id, actor_id=user.id, detail={
        "version": version.number, "note": note, "level": level_name(meta.security_level),
        "new_content": prepared is not None})
    return version


def restore(s: Session, user: User, document_id: int, number: int, note: str | None) -> DocumentVersion:
    """R-DOC-5: restoring copies an old version into a new one. The security level stays the
    document's current one: a content restore does not declassify."""
    document, _rights = document_for(s, user, document_id, "restore", need="edit")
    require_active(document)
    old = version_of(s, document, number)
    meta = Metadata.of(old)
    meta.security_level = document.security_level
    pending = pending_key(s, document)
    words, text_note = words_of(s, s.get(StoredObject, old.object_id), old.content_type, meta.security_level)
    document = s.get(Document, document_id, populate_existing=True,
                     with_for_update=s.bind.dialect.name == "postgresql")
    require_active(document)
    obj = s.get(StoredObject, old.object_id)
    note = (note or "").strip() or f"恢复第 {number} 版"
    version = _next_version(s, user, document, meta, obj, old.file_name, old.content_type, note, pending,
                            restored_from=number)
    search.index(s, document, version.number, words, meta.security_level < ENCRYPTED_FROM, text_note)
    audit.record(s, "document_restored", "document", document.id, actor_id=user.id,
                 detail={"version": version.number, "restored_from": number, "note": note})
    return version


def view(s: Session, user: User, document_id: int) -> tuple[Document, access.Rights]:
    document, rights = document_for(s, user, document_id, "view")
    audit.record(s, "document_viewed", "document", document.id, actor_id=user.id,
                 detail={"version": document.current_version})
    return document, rights


def history(s: Session, user: User, document_id: int) -> tuple[Document, list[DocumentVersion]]:
    document, _rights = document_for(s, user, document_id, "history")
    versions = s.scalars(select(DocumentVersion).where(DocumentVersion.document_id == document.id)
                         .order_by(DocumentVersion.number)).all()
    audit.record(s, "document_history_viewed", "document", document.id, actor_id=user.id,
                 detail={"version": document.current_version, "versions": len(versions)})
    return document, versions


def open_download(s: Session, user: User, document_id: int, number: int | None) -> tuple[DocumentVersion, BinaryIO]:
    document, _rights = document_for(s, user, document_id, "download")
    version = version_of(s, document, number)
    source = open_object(s, s.get(StoredObject, version.object_id))
    audit.record(s, "document_downloaded", "document", document.id, actor_id=user.id,
                 detail={"version": version.number, "size": version.size})
    return version, source


DIFF_FIELDS = ("title", "abstract", "keywords", "business_type_id", "department_id", "document_date",
               "security_level", "file_name", "content_type", "size")


def diff(s: Session, user: User, document_id: int, number: int, against: int | None) -> dict:
    """What changed between two versions: each differing metadata field, and whether the content did."""
    document, _rights = document_for(s, user, document_id, "diff")
    new = version_of(s, document, number)
    old = version_of(s, document, against if against is not None else max(1, number - 1))
    changes = [{"field": f, "from": getattr(old, f), "to": getattr(new, f)}
               for f in DIFF_FIELDS if getattr(old, f) != getattr(new, f)]
    digests = dict(s.execute(select(StoredObject.id, StoredObject.digest)
                             .where(StoredObject.id.in_([old.object_id, new.object_id]))).all())
    audit.record(s, "document_versions_compared", "document", document.id, actor_id=user.id,
                 detail={"version": new.number, "against": old.number})
    return {"from_version": old.number, "to_version": new.number, "changes": changes,
            "content_changed": digests[old.object_id] != digests[new.object_id]}
