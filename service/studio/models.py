"""Tables of the studio. Every change here comes with a migration (0010_studio)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime
from ..models import Department, utcnow


class ProcessModel(Base):
    """A process in the catalogue: its key is the BPMN process id its deployments carry."""

    __tablename__ = "process_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    # Who may start it: {"groups": [codes], "departments": [codes]}; both empty = everyone.
    starters: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    department: Mapped[Department] = relationship()
    draft: Mapped[ModelDraft] = relationship(back_populates="model", uselist=False, lazy="joined",
                                             cascade="all, delete-orphan")


class ModelDraft(Base):
    """The one working copy of a model: diagram, forms (name → JSON text) and scenarios (name →
    scenario). `version` grows with every save; a save naming an older version is refused (409),
    so two designers (or two tabs, or an autosave) never overwrite each other silently."""

    __tablename__ = "model_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("process_models.id", ondelete="CASCADE"), unique=True)
    xml: Mapped[str] = mapped_column(Text)
    forms: Mapped[dict] = mapped_column(JSON, default=dict)
    dmn: Mapped[dict] = mapped_column(JSON, default=dict)
    scenarios: Mapped[dict] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    model: Mapped[ProcessModel] = relationship(back_populates="draft")
