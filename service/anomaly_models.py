"""What the anomaly review of the audit log found (R-SEC-4, issue 15); rules in service/anomaly.py."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine import clock

from .db import Base, UTCDateTime

OPEN, DISMISSED, RECTIFYING, INCIDENT = "open", "dismissed", "rectifying", "incident"
STATUSES = (OPEN, DISMISSED, RECTIFYING, INCIDENT)


class AuditFinding(Base):
    """One hit of one rule: whom it concerns, the audit rows that are its evidence, and what an
    auditor decided (dismissed with a reason, or handed to an issue_rectification instance).
    `fingerprint` names the hit (rule, subject, window), so a review that runs again over the same
    rows finds nothing new."""

    __tablename__ = "audit_findings"
    __table_args__ = (Index("ix_audit_findings_status_found", "status", "found_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(255), unique=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    # What the rule saw, as numbers and names (rendered in the reader's language by anomaly.describe).
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    evidence: Mapped[list] = mapped_column(JSON, default=list)  # audit_events ids, oldest first
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id", ondelete="SET NULL"))
