"""Stored objects: the rows that point at blobs, the documents' data keys, and the way an upload
becomes one (R-DOC-2, R-SEC-3).

`receive` streams a multipart body into the blob store (upload.py) — plain only when the level is
known to be below 秘密 before the file arrives, encrypted under the document's data key otherwise;
`prepare` sniffs the type, moves content that turned out 公开/内部 to plain storage and extracts
its text for the index; `store_object` records the object in the caller's transaction. Slow work
(receiving, extraction, segmentation) happens before that transaction opens.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Invalid
from . import content, crypto, search
from . import upload as uploads
from .keys import Keyring
from .models import ENCRYPTED_FROM, DataKey, Document, DocumentVersion, StoredObject, parse_level
from .settings import EXTENSION
from .settings import current as settings
from .storage import BlobStore, Received

NOT_INDEXED = "confidential: content not indexed"


def blob_store() -> BlobStore:
    ext = current_app.extensions
    if "inkless.documents.store" not in ext:
        ext["inkless.documents.store"] = BlobStore(settings().blob_dir)
    return ext["inkless.documents.store"]


def keyring(app=None) -> Keyring:
    app = app or current_app
    ext = app.extensions
    if "inkless.documents.keys" not in ext:
        held = ext[EXTENSION]
        ext["inkless.documents.keys"] = Keyring.load(held.master_keys, held.key_dir)
    return ext["inkless.documents.keys"]


def after_commit(s: Session, action: Callable[[], None]) -> None:
    """Run `action` once the current transaction has committed (removing files a committed
    change no longer refers to); dropped if it rolls back."""
    actions = s.info.setdefault("documents.after_commit", [])
    actions.append(action)
    if not event.contains(s, "after_commit", _run_after_commit):
        event.listen(s, "after_commit", _run_after_commit)
        event.listen(s, "after_rollback", _drop_after_commit)


def _run_after_commit(session: Session) -> None:
    for action in session.info.pop("documents.after_commit", []):
        action()


def _drop_after_commit(session: Session) -> None:
    session.info.pop("documents.after_commit", None)


# --- keys and content --------------------------------------------------------------------------

@dataclass
class PendingKey:
    """The data key an upload is encrypted with: the document's, or a new one stored with it."""

    algorithm: str
    key: bytes
    row: DataKey | None = None


def data_key(s: Session, document_id: int) -> DataKey | None:
    return s.scalar(select(DataKey).where(DataKey.document_id == document_id))


def unwrap(row: DataKey) -> bytes:
    return crypto.unwrap_key(keyring().get(row.master_key_id), row.algorithm, row.wrapped_key)


def pending_key(s: Session, document: Document | None) -> PendingKey:
    row = data_key(s, document.id) if document is not None else None
    if row is not None:
        return PendingKey(row.algorithm, unwrap(row), row)
    algorithm = settings().cipher
    return PendingKey(algorithm, crypto.new_data_key(algorithm))


def persist_key(s: Session, document: Document, pending: PendingKey) -> DataKey:
    if pending.row is None:
        kid, master = keyring().current()
        pending.row = DataKey(document_id=document.id, algorithm=pending.algorithm, master_key_id=kid,
                              wrapped_key=crypto.wrap_key(master, pending.algorithm, pending.key))
        s.add(pending.row)
        s.flush()
    return pending.row


def open_object(s: Session, obj: StoredObject) -> BinaryIO:
    key = unwrap(s.get(DataKey, obj.data_key_id)) if obj.data_key_id else None
    return blob_store().open(obj.name, obj.algorithm, key, obj.chunk_size, obj.nonce_prefix, obj.size)


@dataclass
class Prepared:
    received: Received
    content_type: str
    file_name: str
    words: str  # the extracted text, segmented for the index ("" at 秘密 and above)
    note: str | None


def receive(s: Session, stream: BinaryIO, content_type: str | None, document: Document | None) -> tuple[uploads.Upload, PendingKey]:
    pending = pending_key(s, document)
    store = blob_store()

    def choose_sink(form: dict[str, str]):
        level = parse_level(form.get("security_level"))
        if level is not None and level < ENCRYPTED_FROM:
            return store.plain_sink()
        return store.encrypted_sink(pending.algorithm, pending.key, settings().chunk_size)

    s.commit()  # no transaction (nor SQLite's write lock) while the body streams in
    return uploads.receive(stream, content_type, settings().max_upload_bytes, choose_sink), pending


def discard(upload: uploads.Upload) -> None:
    if upload.received is not None:
        blob_store().discard(upload.received)


def prepare(upload: uploads.Upload, pending: PendingKey, level: int) -> Prepared:
    """Sniff the type from the bytes, settle plain or encrypted storage, extract text to index."""
    store = blob_store()
    received = upload.received
    encrypted = received.algorithm != "none"

    def reopen():
        return store.open_staged(received, pending.key) if encrypted else store.open(received.name, "none")

    content_type = upload.sniffer.content_type(reopen)
    if content_type is None:
        store.discard(received)
        raise Invalid(_("Only PDF, DOCX and UTF-8 text files are accepted (judged by their content)."),
                      [{"field": "file", "message": _("unsupported or empty file")}])
    if level < ENCRYPTED_FROM and encrypted:
        # The level came after the file: it was encrypted on arrival and is stored plain now.
        with store.open_staged(received, pending.key) as reader:
            plain = store.copy_into(reader, store.plain_sink())
        store.discard(received)
        received = plain
    words, note = "", NOT_INDEXED
    if level < ENCRYPTED_FROM:
        with store.open(received.name, "none") as f:
            text, note = content.extract_text(f, content_type, settings().extract_max_bytes, settings().index_chars)
        words = search.segment(text)
    return Prepared(received, content_type, content.safe_file_name(upload.file_name, content_type), words, note)


def _plain_object(s: Session, received: Received) -> StoredObject:
    obj = s.scalar(select(StoredObject).where(StoredObject.name == received.name))
    if obj is not None:
        return obj
    try:
        with s.begin_nested():
            obj = StoredObject(name=received.name, algorithm="none", size=received.size, digest=received.digest)
            s.add(obj)
    except IntegrityError:  # the same content committed by a concurrent upload
        obj = s.scalar(select(StoredObject).where(StoredObject.name == received.name))
    return obj


def store_object(s: Session, document: Document, received: Received, pending: PendingKey) -> StoredObject:
    if received.algorithm == "none":
        return _plain_object(s, received)
    key_row = persist_key(s, document, pending)
    blob_store().place_encrypted(received)
    obj = StoredObject(name=received.name, algorithm=received.algorithm, data_key_id=key_row.id,
                       chunk_size=received.chunk_size, nonce_prefix=received.nonce_prefix, size=received.size,
                       digest=received.digest)
    s.add(obj)
    s.flush()
    return obj


def words_of(s: Session, obj: StoredObject, content_type: str, level: int) -> tuple[str, str | None]:
    """The segmented text of stored content for the index, if its level allows indexing. Commits
    first: extraction and segmentation take time and must not hold a transaction open."""
    if level >= ENCRYPTED_FROM:
        return "", NOT_INDEXED
    source = open_object(s, obj)
    s.commit()
    with source as f:
        text, note = content.extract_text(f, content_type, settings().extract_max_bytes, settings().index_chars)
    return search.segment(text), note


def seal_plain_versions(s: Session, document: Document, pending: PendingKey) -> dict[int, StoredObject]:
    """The document rises to 秘密 or above: its earlier versions stored in plain are encrypted
    too, and plain blobs nothing else refers to are removed after the commit (R-DOC-2)."""
    store = blob_store()
    sealed: dict[int, StoredObject] = {}
    versions = s.scalars(select(DocumentVersion).join(StoredObject, StoredObject.id == DocumentVersion.object_id)
                         .where(DocumentVersion.document_id == document.id, StoredObject.algorithm == "none")).all()
    for version in versions:
        if version.object_id not in sealed:
            plain = s.get(StoredObject, version.object_id)
            with store.open(plain.name, "none") as f:
                received = store.copy_into(f, store.encrypted_sink(pending.algorithm, pending.key, settings().chunk_size))
            sealed[plain.id] = store_object(s, document, received, pending)
        version.object_id = sealed[version.object_id].id
    s.flush()
    for plain_id in sealed:
        if s.scalar(select(func.count()).where(DocumentVersion.object_id == plain_id)) == 0:
            plain = s.get(StoredObject, plain_id)
            name = plain.name
            s.delete(plain)
            after_commit(s, lambda name=name: store.remove(name, "none"))
    search.drop_body(s, document.id, NOT_INDEXED)
    return sealed
