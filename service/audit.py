"""The tamper-evident audit log (R-SEC-8, R-SEC-10).

Each event's hash is SHA-256 over the previous hash and the event's canonical JSON, so deleting
or editing a row breaks every later link; `verify` finds the first broken one. Appends happen in
the caller's transaction, so an action and its audit record commit together or not at all.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from flask import has_request_context, request
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from .models import AuditEvent, utcnow

GENESIS = "0" * 64


def _digest(prev: str, event: AuditEvent) -> str:
    body = json.dumps(
        {
            "at": event.at.astimezone(UTC).replace(tzinfo=None).isoformat(),
            "actor": event.actor_id,
            "action": event.action,
            "type": event.object_type,
            "id": event.object_id,
            "detail": event.detail,
            "addr": event.client_addr,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    actor_id: int | None = None,
    detail: dict | None = None,
) -> AuditEvent:
    if session.bind.dialect.name == "postgresql":
        # Serialise appends so two transactions never chain onto the same predecessor.
        session.execute(text("SELECT pg_advisory_xact_lock(7301)"))
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    event = AuditEvent(
        at=utcnow().replace(microsecond=0),
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail or {},
        client_addr=request.remote_addr if has_request_context() else None,
        prev_hash=prev,
    )
    event.hash = _digest(prev, event)
    session.add(event)
    session.flush()
    return event


def verify(session: Session) -> int | None:
    """Returns the id of the first event whose chain is broken, or None if the log is intact."""
    prev = GENESIS
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        if event.prev_hash != prev or _digest(prev, event) != event.hash:
            return event.id
        prev = event.hash
    return None
