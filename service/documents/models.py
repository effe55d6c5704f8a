"""Tables of the document library. Every change here comes with a migration (0003_documents).

Security levels are stored as their rank (0 公开 … 4 核心机密) so that mandatory access control is
one comparison in SQL: a user sees a document only if `security_level <= clearance`.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime
from ..models import utcnow

# R-DOC-2: the regulation's five levels, lowest first.
LEVELS = ("公开", "内部", "秘密", "机密", "核心机密")
PUBLIC, INTERNAL, SECRET, CONFIDENTIAL, CORE_SECRET = range(5)
# From this level on, content is encrypted at rest and its text is never indexed.
ENCRYPTED_FROM = SECRET
# Everyone's clearance until a system administrator sets another one.
DEFAULT_CLEARANCE = INTERNAL

STATES = ("active", "archived", "deleted")
PERMISSIONS = ("read", "edit")
AUDIENCES = ("department", "all")


def level_name(rank: int) -> str:
    return LEVELS[rank]


def parse_level(value: str | None) -> int | None:
    value = (value or "").strip()
    return LEVELS.index(value) if value in LEVELS else None


class BusinessType(Base):
    """The managed taxonomy of business types (R-DOC-3): a tree administrators edit."""

    __tablename__ = "business_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("business_types.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserClearance(Base):
    """A user's clearance; users without a row hold DEFAULT_CLEARANCE. Nobody holds 核心机密 by
    role, system administrators included: it is granted to a person, and audited."""

    __tablename__ = "user_clearances"
    __table_args__ = (CheckConstraint("level BETWEEN 0 AND 4", name="ck_user_clearances_level"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    """A document and its current metadata (a copy of its newest version's, for filtering)."""

    __tablename__ = "documents"
    __table_args__ = (
        # The target of document_shares' (document_id, security_level) foreign key.
        UniqueConstraint("id", "security_level", name="uq_documents_id_level"),
        CheckConstraint("security_level BETWEEN 0 AND 4", name="ck_documents_level"),
        CheckConstraint("state IN ('active', 'archived', 'deleted')", name="ck_documents_state"),
        # R-DOC-4: a core-secret document is never published (publication is sharing with an audience).
        CheckConstraint("security_level < 4 OR published_at IS NULL", name="ck_documents_core_secret_unpublished"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    business_type_id: Mapped[int | None] = mapped_column(ForeignKey("business_types.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    abstract: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    document_date: Mapped[date | None] = mapped_column(Date, index=True)
    security_level: Mapped[int] = mapped_column(SmallInteger, index=True)
    state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    audience: Mapped[str | None] = mapped_column(String(16))


class DataKey(Base):
    """A document's data key, wrapped by a master key (`master_key_id`); rotation re-wraps it."""

    __tablename__ = "document_data_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    master_key_id: Mapped[str] = mapped_column(String(32), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StoredObject(Base):
    """Bytes in the blob store. Plain objects are named by their SHA-256 (stored once however
    often uploaded); encrypted ones get random names and record their algorithm and data key."""

    __tablename__ = "stored_objects"
    __table_args__ = (
        CheckConstraint("(algorithm = 'none') = (data_key_id IS NULL)", name="ck_stored_objects_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))  # none | AES-256-GCM | SM4-GCM
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("document_data_keys.id"), index=True)
    chunk_size: Mapped[int | None] = mapped_column(Integer)
    nonce_prefix: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the content for plain objects; for encrypted ones an HMAC under a key derived from
    # the document's data key, so versions of one document compare without revealing equality
    # across documents.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentVersion(Base):
    """One version: its content and a full copy of the metadata it was filed with (R-DOC-5)."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_document_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    object_id: Mapped[int] = mapped_column(ForeignKey("stored_objects.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(200))
    abstract: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    business_type_id: Mapped[int | None] = mapped_column(ForeignKey("business_types.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    document_date: Mapped[date | None] = mapped_column(Date)
    security_level: Mapped[int] = mapped_column(SmallInteger)
    change_note: Mapped[str] = mapped_column(Text)
    restored_from: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentShare(Base):
    """A grant to a user or a department (R-DOC-4).

    `security_level` is the document's level, kept equal to it by the composite foreign key
    (ON UPDATE CASCADE); the CHECK then makes a core-secret share impossible in the database
    itself: inserting one fails, and so does raising a shared document to 核心机密."""

    __tablename__ = "document_shares"
    __table_args__ = (
        ForeignKeyConstraint(["document_id", "security_level"], ["documents.id", "documents.security_level"],
                             onupdate="CASCADE", ondelete="CASCADE", name="fk_document_shares_document_level"),
        CheckConstraint("security_level <> 4", name="ck_document_shares_not_core_secret"),
        CheckConstraint("(user_id IS NULL) <> (department_id IS NULL)", name="ck_document_shares_one_grantee"),
        CheckConstraint("permission IN ('read', 'edit')", name="ck_document_shares_permission"),
        UniqueConstraint("document_id", "user_id", name="uq_document_shares_user"),
        UniqueConstraint("document_id", "department_id", name="uq_document_shares_department"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(Integer, index=True)
    security_level: Mapped[int] = mapped_column(SmallInteger)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    permission: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentPublication(Base):
    """A publication request (file_publication.bpmn): which version its reviewers look at. The
    candidates of the instance's open tasks may read the document while they review it."""

    __tablename__ = "document_publications"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), unique=True)
    version_number: Mapped[int] = mapped_column(Integer)
    audience: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DocumentSearch(Base):
    """What the full-text index holds for a document's current version, already segmented into
    words (jieba). SQLite indexes it with an FTS5 table kept in sync by triggers, PostgreSQL with a
    generated tsvector column; both are created by the migration. `body` stays empty for
    documents at 秘密 and above: their content is never indexed (docs/documents.md)."""

    __tablename__ = "document_search"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True,
                                             autoincrement=False)
    version_number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_indexed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(255))


class BreakGlassGrant(Base):
    """A system administrator's emergency read access to one document above their clearance:
    asked for with a reason, time-limited, audited, and told to the owner's department head."""

    __tablename__ = "break_glass_grants"
    __table_args__ = (Index("ix_break_glass_grants_user_document", "user_id", "document_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
