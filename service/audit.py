"""The tamper-evident audit log (R-SEC-3, R-SEC-8, R-SEC-10).

Each event's MAC is HMAC-SHA256, under a key held outside the database, over the previous event's
MAC and the event's canonical JSON; the row names the key (`key_id`). Deleting or editing a row
breaks every later link, and without the key no one can recompute the chain after an edit.
Truncation — deleting the newest rows, or all of them — leaves an intact chain, so signed
checkpoints outside the database anchor its head (service/audit_chain.py, which also verifies).

Rows written before the chain was keyed (migration 0012) keep `key_id` NULL and their plain
SHA-256; they can only form the start of the log.

The keys are handled like the documents' master keys (service/documents/keys.py): INKLESS_AUDIT_KEY
(base64, current first) or key files in `<data dir>/keys/audit/`, the first generated on first use;
`inkless audit rotate-key` adds a key and makes it current, the older ones stay to verify old rows.

Appends happen in the caller's transaction, so an action and its audit record commit together or
not at all.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_request_context, request
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from . import db
from .documents.keys import Keyring
from .models import AuditEvent, utcnow

GENESIS = "0" * 64
KEYRING = "inkless.audit.keys"


# --- keys -------------------------------------------------------------------------------------

def key_dir(app: Flask) -> Path:
    return Path(app.config["INKLESS"].data_dir) / "keys" / "audit"


def _current_stamp(directory: Path) -> int | None:
    try:
        return os.stat(directory / "CURRENT").st_mtime_ns
    except FileNotFoundError:
        return None


def keyring(app: Flask | None = None) -> Keyring:
    """The audit keys. From files, a rotation by another process (`inkless audit rotate-key`) is
    followed at the next append: one stat of `CURRENT` per call."""
    app = app or current_app
    configured = app.config["INKLESS"].audit_keys
    directory = key_dir(app)
    stamp = None if configured else _current_stamp(directory)
    held = app.extensions.get(KEYRING)
    if held is None or held[1] != stamp:
        ring = Keyring.load(configured, directory)
        app.extensions[KEYRING] = held = (ring, stamp)
    return held[0]


# --- the formula ------------------------------------------------------------------------------

def fields(event: AuditEvent) -> dict:
    """What the MAC covers, as stored in archive files."""
    return {
        "at": event.at.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "actor": event.actor_id,
        "action": event.action,
        "type": event.object_type,
        "id": event.object_id,
        "detail": event.detail,
        "addr": event.client_addr,
    }


def digest(prev: str, body: dict, kid: str | None, key: bytes | None) -> str:
    """Keyed: HMAC-SHA256(key, prev + canonical JSON with the key id). Legacy (kid None): SHA-256."""
    if kid is not None:
        body = {**body, "kid": kid}
    data = (prev + json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)).encode("utf-8")
    if kid is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


# --- appending --------------------------------------------------------------------------------

_LAST_HASH = select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
_TABLE = AuditEvent.__table__
_COLUMNS = ("at", "actor_id", "action", "object_type", "object_id", "detail", "client_addr", "prev_hash", "hash",
            "key_id")
_INSERT = insert(_TABLE)
# The same row, written only if the chain's head is still the one it links to: the predecessor
# this process saw last is usually still the head, and then the append is one statement, not two.
_INSERT_ONTO = insert(_TABLE).from_select(
    list(_COLUMNS),
    select(*(bindparam(name, type_=_TABLE.c[name].type) for name in _COLUMNS)).where(
        func.coalesce(_LAST_HASH.scalar_subquery(), GENESIS) == bindparam("prev_hash"))).returning(_TABLE.c.id)
# PostgreSQL: lock, read the head, append if it is `prev_hash` (migrations 0018, 0019); the head otherwise.
_APPEND = select(func.inkless_audit_append(*(
    bindparam(name, type_=_TABLE.c[name].type) for name in ("prev_hash", "at", "actor_id", "action", "object_type",
                                                            "object_id", "detail", "client_addr", "hash", "key_id"))))
# The head this process appended last, per app (it serves one database).
HEAD = "inkless.audit.head"


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    actor_id: int | None = None,
    detail: dict | None = None,
) -> None:
    """Append an event to the chain in the caller's transaction.

    The append holds the chain's lock to the end of the transaction (PostgreSQL: an advisory lock;
    SQLite: the write lock), so two transactions never chain onto the same predecessor. The event is
    first linked to the head this process appended last, which is usually still the head, in one
    statement; a stale guess (another process appended, or the transaction that appended rolled
    back) inserts nothing, and the event is linked to the head read under the lock."""
    app = current_app._get_current_object()
    kid, key = keyring(app).current()
    event = AuditEvent(
        at=utcnow().replace(microsecond=0),
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail or {},
        client_addr=request.remote_addr if has_request_context() else None,
        key_id=kid,
    )
    body = fields(event)
    row = {name: getattr(event, name) for name in _COLUMNS if name not in ("prev_hash", "hash")}

    def linked(prev: str) -> dict:
        row.update(prev_hash=prev, hash=digest(prev, body, kid, key))
        return row

    guess = app.extensions.get(HEAD)
    if session.bind.dialect.name == "postgresql":
        head = session.scalar(_APPEND, linked(guess or ""))  # the lock, the head, the insert
    else:
        db.hold_write_lock(session)  # a GET request may not hold it yet
        if guess is not None and session.execute(_INSERT_ONTO, linked(guess)).first() is not None:
            head = None
        else:
            head = session.scalar(_LAST_HASH) or GENESIS
    if head is not None:
        session.execute(_INSERT, linked(head))
    app.extensions[HEAD] = row["hash"]
