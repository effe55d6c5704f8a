"""Tables of the staff workspace (issues 6, 17): task-form drafts, the tracking codes of public
account applications and substitutes. Kept apart from models.py because only the workspace reads them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine import clock

from .db import Base, UTCDateTime


def _now() -> datetime:
    return clock.now()


class TaskDraft(Base):
    """A half-filled task form, saved by one person to finish later; gone when the task completes."""

    __tablename__ = "task_drafts"
    __table_args__ = (UniqueConstraint("task_id", "user_id", name="uq_task_drafts_task_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("open_tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class ApplicationTracking(Base):
    """The tracking code of an account application made on the public page (R-ACC-1).

    Only the SHA-256 of the code is stored: the code has 192 random bits, so a plain hash cannot be
    reversed by guessing, and the raw code exists only in the applicant's hands."""

    __tablename__ = "application_trackings"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class Substitution(Base):
    """While someone is away (`starts_at` to `ends_at`, by engine.clock), the tasks offered to them
    are offered to their substitute too (issue 17, R-WF-2: no step waits for someone who is out)."""

    __tablename__ = "substitutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
