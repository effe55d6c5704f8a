"""Anchors for the audit chain (R-SEC-3, R-SEC-5, R-SEC-8): checkpoints, archive files, verification.

A keyed chain (service/audit.py) catches an edited or deleted row, but not a deleted tail: the rows
left still chain. So a **checkpoint** — the last id, the number of rows up to it and its MAC, signed
with the audit key — is written outside the database: every `audit_checkpoint_minutes` by the job
table (kind "audit"), on every backup (into the backup itself and the backup location) and by
`inkless audit checkpoint`. It goes to two files, `<backup location>/audit-checkpoint.json` and
`audit_checkpoint_file` (default `<data dir>/audit/checkpoint.json`); verification takes the newest
validly signed one among them and the backups' own (a restore signs one for the chain it leaves).
Rows deleted after the newest checkpoint are not detected: the interval bounds that loss.

Rows older than `audit_retention_days` **move to archive files** in `<data dir>/audit/archive/`:
`<first>-<last>.jsonl` (the rows with what their MAC covers) and `.sig.json` (first and last id,
rows, the predecessor's and the last MAC, the file's SHA-256, signed). Verification chains through
the archives, oldest first, then through the table, so an archive removed or changed is caught
like a row. The newest row always stays in the table: the next append chains onto it.

`verify` stops at the first problem and names it: a row whose link or MAC is wrong, a row written
without the key after keyed ones (a rewrite with the old public formula), a missing key, an archive
or checkpoint whose signature fails, or a tail missing against the checkpoint.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from flask_babel import gettext
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine import clock

from . import audit
from .documents.crypto import CorruptObject
from .documents.keys import Keyring
from .localtime import PLATFORM_TZ
from .models import AuditEvent

log = logging.getLogger("inkless.audit")
CHECKPOINT = "audit-checkpoint.json"
FORMAT = 1
JOB = ("audit", "chain")  # the job table's row: archive what is due, then a checkpoint
BATCH = 1000


# --- signing ----------------------------------------------------------------------------------

def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _sign(ring: Keyring, purpose: bytes, body: dict) -> dict:
    kid, key = ring.current()
    body = {**body, "key_id": kid}
    return {"body": body, "mac": hmac.new(key, purpose + b"|" + _canonical(body), hashlib.sha256).hexdigest()}


def _signed(ring: Keyring, purpose: bytes, doc) -> dict | None:
    """The body if its signature holds with a key we have; None otherwise."""
    try:
        body, mac = doc["body"], doc["mac"]
        key = ring.get(body["key_id"])
    except (KeyError, TypeError, CorruptObject):
        return None
    expected = hmac.new(key, purpose + b"|" + _canonical(body), hashlib.sha256).hexdigest()
    return body if isinstance(mac, str) and hmac.compare_digest(mac, expected) else None


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- where ------------------------------------------------------------------------------------

def archive_dir(app: Flask) -> Path:
    return Path(app.config["INKLESS"].data_dir) / "audit" / "archive"


def checkpoint_paths(app: Flask) -> list[Path]:
    from . import backup

    cfg = app.config["INKLESS"]
    second = cfg.audit_checkpoint_file or Path(cfg.data_dir) / "audit" / "checkpoint.json"
    return [backup.location(app) / CHECKPOINT, Path(second)]


# --- archives ---------------------------------------------------------------------------------

@dataclass
class Archive:
    rows_path: Path
    sig_path: Path

    @property
    def name(self) -> str:
        return self.rows_path.name


def archives(directory: Path) -> list[Archive]:
    """Oldest first (the names are zero-padded ids)."""
    if not directory.is_dir():
        return []
    return [Archive(p, p.with_name(p.name[:-len(".jsonl")] + ".sig.json")) for p in sorted(directory.glob("*.jsonl"))]


def _archive_body(ring: Keyring, archive: Archive) -> tuple[dict | None, str]:
    """The signed body of an archive whose file matches it, or None and what is wrong."""
    try:
        doc = json.loads(archive.sig_path.read_text())
    except (OSError, ValueError):
        return None, "signature file missing or unreadable"
    body = _signed(ring, b"inkless audit archive", doc)
    if body is None:
        return None, "signature does not match"
    sha = hashlib.sha256()
    with open(archive.rows_path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            sha.update(chunk)
    if sha.hexdigest() != body["sha256"]:
        return None, "the rows differ from the signed file"
    return body, ""


def archived_rows(archive: Archive) -> Iterator[dict]:
    with open(archive.rows_path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def archived_through(ring: Keyring, directory: Path) -> tuple[int, int]:
    """(rows archived, last id archived) over the valid archive files."""
    total = last = 0
    for archive in archives(directory):
        body, _ = _archive_body(ring, archive)
        if body:
            total, last = total + body["rows"], max(last, body["last_id"])
    return total, last


def archive_due(app: Flask, s: Session) -> int:
    """Move the rows older than the retention period to a signed archive file (never the newest
    row); returns how many moved. The file is written and synced before the rows are deleted."""
    cutoff = clock.now() - timedelta(days=app.config["INKLESS"].audit_retention_days)
    ring, directory = audit.keyring(app), archive_dir(app)
    # Rows an interrupted run archived but did not delete (the file is written first).
    s.execute(delete(AuditEvent).where(AuditEvent.id <= archived_through(ring, directory)[1]))
    newest = s.scalar(select(func.max(AuditEvent.id)))
    if newest is None:
        return 0
    young = s.scalar(select(func.min(AuditEvent.id)).where(AuditEvent.at >= cutoff))
    # A contiguous run from the oldest row: the first young row ends it (and the newest stays).
    limit = min(newest, young) if young is not None else newest
    events = s.scalars(select(AuditEvent).where(AuditEvent.id < limit).order_by(AuditEvent.id)).all()
    if not events:
        return 0
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = f"{events[0].id:012d}-{events[-1].id:012d}"
    rows_path = directory / f"{stem}.jsonl"
    sha = hashlib.sha256()
    with open(rows_path.with_name(rows_path.name + ".tmp"), "wb") as f:
        for e in events:
            line = json.dumps({"row": e.id, "prev": e.prev_hash, "hash": e.hash, "kid": e.key_id,
                               "fields": audit.fields(e)}, ensure_ascii=False, sort_keys=True, default=str)
            data = line.encode() + b"\n"
            f.write(data)
            sha.update(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(rows_path.with_name(rows_path.name + ".tmp"), rows_path)
    body = {"format": FORMAT, "first_id": events[0].id, "last_id": events[-1].id, "rows": len(events),
            "prev": events[0].prev_hash, "head": events[-1].hash, "sha256": sha.hexdigest(),
            "at": clock.now().isoformat(), "cutoff": cutoff.isoformat()}
    _write(directory / f"{stem}.sig.json", _sign(ring, b"inkless audit archive", body))
    s.execute(delete(AuditEvent).where(AuditEvent.id <= events[-1].id))
    audit.record(s, "audit_archived", "audit_archive", stem,
                 detail={"rows": len(events), "first_id": events[0].id, "last_id": events[-1].id})
    log.info("audit: %d rows archived to %s", len(events), rows_path)
    return len(events)


# --- checkpoints ------------------------------------------------------------------------------

def head(conn, ring: Keyring, directory: Path) -> dict:
    """The chain's state now, in `conn`'s transaction: last id, rows up to it (archived ones too)
    and its MAC. `conn` is a Session or a Connection."""
    archived, through = archived_through(ring, directory)
    last = conn.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    live = conn.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.id > through)).scalar()
    return {"format": FORMAT, "last_id": last.id if last else 0, "rows": live + archived,
            "head": last.hash if last else audit.GENESIS, "at": clock.now().isoformat()}


def signed_checkpoint(app: Flask, conn) -> dict:
    ring = audit.keyring(app)
    return _sign(ring, b"inkless audit checkpoint", head(conn, ring, archive_dir(app)))


def write_checkpoint(app: Flask, conn, replace: bool = False) -> dict:
    """Sign the chain's head now and write it to the checkpoint files."""
    doc = signed_checkpoint(app, conn)
    publish(app, doc, replace)
    return doc["body"]


def publish(app: Flask, doc: dict, replace: bool = False) -> None:
    """A file holding a later checkpoint is left as it is unless `replace` (a restore, which moves
    the chain back on purpose)."""
    ring = audit.keyring(app)
    for path in checkpoint_paths(app):
        held = _read_checkpoint(ring, path)
        if replace or held is None or held["last_id"] <= doc["body"]["last_id"]:
            _write(path, doc)


def fire(s: Session, job) -> None:
    """The job table's "audit" job: archive the rows past retention, then a checkpoint."""
    from flask import current_app

    app = current_app._get_current_object()
    job.due_at = clock.now() + timedelta(minutes=max(1, app.config["INKLESS"].audit_checkpoint_minutes))
    job.fired += 1
    archive_due(app, s)
    s.commit()  # the checkpoint covers committed rows only
    write_checkpoint(app, s)


def _read_checkpoint(ring: Keyring, path: Path) -> dict | None:
    try:
        return _signed(ring, b"inkless audit checkpoint", json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


@dataclass
class Anchor:
    """The checkpoints found: the last one signed, and the files whose signature failed."""
    checkpoint: dict | None = None
    source: str = ""
    forged: list[str] = field(default_factory=list)


def anchors(app: Flask, ring: Keyring) -> Anchor:
    from . import backup

    return anchor_of(ring, checkpoint_paths(app) + [b.path / CHECKPOINT for b in backup.all_backups(app)])


def anchor_of(ring: Keyring, paths: list[Path]) -> Anchor:
    found = Anchor()
    for path in paths:
        if not path.is_file():
            continue
        body = _read_checkpoint(ring, path)
        if body is None:
            found.forged.append(str(path))
        elif found.checkpoint is None or _newer(body, found.checkpoint):
            found.checkpoint, found.source = body, str(path)
    return found


def _newer(a: dict, b: dict) -> bool:
    """The one signed last wins: after a restore of an older backup, the restore's checkpoint
    (not a later backup's) describes the chain. Only the key's holder can sign one."""
    return (datetime.fromisoformat(a["at"]), a["last_id"]) > (datetime.fromisoformat(b["at"]), b["last_id"])


# --- verification -----------------------------------------------------------------------------

MESSAGES = {
    "chain": "event %(id)s: its link to the previous event is broken (an event before it was deleted or changed)",
    "mac": "event %(id)s: its MAC does not match (the event was changed)",
    "unkeyed": "event %(id)s: written without the audit key after keyed events (rewritten with the public formula)",
    "key_missing": "event %(id)s: audit key %(key)s is not available (INKLESS_AUDIT_KEY or keys/audit/)",
    "start": "the log starts at event %(id)s, whose predecessor is in no archive file",
    "archive": "archive file %(file)s: %(what)s",
    "checkpoint": "checkpoint %(file)s: its signature does not match",
    "truncated": "events after %(last)s up to %(cp_last)s are missing (%(missing)s events): "
                 "the checkpoint of %(at)s covers up to event %(cp_last)s",
    "emptied": "every event is missing: the checkpoint of %(at)s covers %(rows)s events up to event %(cp_last)s",
    "head": "event %(id)s differs from the checkpoint of %(at)s",
    "count": "%(missing)s events up to event %(id)s are missing against the checkpoint of %(at)s",
}


@dataclass
class Verdict:
    ok: bool
    rows: int = 0  # events checked
    last_id: int | None = None
    code: str | None = None
    bad_id: int | None = None  # the first bad event, or the first missing one
    params: dict = field(default_factory=dict)
    checkpoint: dict | None = None

    @property
    def detail(self) -> str:
        """In English, for the command line and logs."""
        if self.ok:
            return f"{self.rows} events" + (f", checkpoint at event {self.checkpoint['last_id']}"
                                            if self.checkpoint else ", no checkpoint yet")
        return MESSAGES[self.code] % self.params

    def message(self) -> str:
        """In the reader's language, for the maintenance page and API."""
        if self.ok:
            if self.checkpoint:
                return gettext("%(rows)s events, checkpoint at event %(id)s",
                               rows=self.rows, id=self.checkpoint["last_id"])
            return gettext("%(rows)s events, no checkpoint yet", rows=self.rows)
        params = dict(self.params)
        if "at" in params:
            params["at"] = _moment(params["at"])
        return gettext(MESSAGES[self.code], **params)


def _moment(iso: str) -> str:
    local = datetime.fromisoformat(iso).astimezone(PLATFORM_TZ)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _bad(code: str, checked: int, last_seen: int | None, bad_id: int | None = None, **params) -> Verdict:
    return Verdict(False, checked, last_seen, code, bad_id, {"id": bad_id, **params})


def _rows(s: Session, ring: Keyring, directory: Path, from_id: int | None,
          cp_last: int) -> Iterator[tuple]:
    """In chain order: ("row", (id, prev, hash, kid, fields)); ("skipped", rows up to the checkpoint)
    for what `from_id` passes over; ("archive", file, problem) for an archive that fails."""
    through = 0
    for archive in archives(directory):
        body, what = _archive_body(ring, archive)
        if body is None:
            yield "archive", archive.name, what
            return
        through = body["last_id"]
        if from_id is not None and body["last_id"] < from_id and body["last_id"] <= cp_last:
            yield "skipped", body["rows"]
            continue
        for r in archived_rows(archive):
            yield "row", (r["row"], r["prev"], r["hash"], r["kid"], r["fields"])
    # Rows still in the table that an archive holds are left over from an interrupted archiving.
    query = select(AuditEvent).where(AuditEvent.id > through).order_by(AuditEvent.id)
    if from_id is not None:
        yield "skipped", s.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.id > through, AuditEvent.id < from_id, AuditEvent.id <= cp_last))
        query = query.where(AuditEvent.id >= from_id)
    for e in s.scalars(query.execution_options(yield_per=BATCH)):
        yield "row", (e.id, e.prev_hash, e.hash, e.key_id, audit.fields(e))


def verify(s: Session, ring: Keyring, directory: Path, anchor: Anchor, from_id: int | None = None) -> Verdict:
    """Walk the archives and the table in id order; with `from_id`, start at that event (trusting
    its link backwards) — the checkpoint is still compared."""
    if anchor.forged:
        return _bad("checkpoint", 0, None, file=anchor.forged[0])
    cp = anchor.checkpoint
    prev: str | None = audit.GENESIS if from_id is None else None
    keyed_seen = from_id is not None and _keyed_before(s, ring, directory, from_id)
    checked = counted = 0  # checked: MACs computed; counted: rows up to the checkpoint's last id
    last: int | None = None
    head_at_cp: str | None = None
    for kind, *item in _rows(s, ring, directory, from_id, cp["last_id"] if cp else 0):
        if kind == "archive":
            return _bad("archive", checked, last, file=item[0], what=item[1])
        if kind == "skipped":
            counted += item[0]
            continue
        row_id, row_prev, row_hash, kid, body = item[0]
        if prev is None:
            prev = row_prev
        if row_prev != prev:
            return _bad("start" if last is None and from_id is None else "chain", checked, last, row_id)
        if kid is None:
            if keyed_seen:
                return _bad("unkeyed", checked, last, row_id)
            expected = audit.digest(prev, body, None, None)
        else:
            keyed_seen = True
            try:
                key = ring.get(kid)
            except CorruptObject:
                return _bad("key_missing", checked, last, row_id, key=kid)
            expected = audit.digest(prev, body, kid, key)
        if not hmac.compare_digest(expected, row_hash):
            return _bad("mac", checked, last, row_id)
        checked += 1
        if cp is not None and row_id <= cp["last_id"]:
            counted += 1
            if row_id == cp["last_id"]:
                head_at_cp = row_hash
        prev, last = row_hash, row_id
    if cp is not None and head_at_cp is None and from_id is not None:  # passed over
        head_at_cp = s.scalar(select(AuditEvent.hash).where(AuditEvent.id == cp["last_id"]))
    verdict = _against_checkpoint(cp, checked, last, counted, head_at_cp)
    verdict.checkpoint = cp
    return verdict


def _keyed_before(s: Session, ring: Keyring, directory: Path, from_id: int) -> bool:
    if s.scalar(select(AuditEvent.id).where(AuditEvent.id < from_id, AuditEvent.key_id.is_not(None)).limit(1)):
        return True
    return any(r["kid"] for a in archives(directory) for r in archived_rows(a) if r["row"] < from_id)


def _against_checkpoint(cp: dict | None, checked: int, last: int | None, counted: int,
                        head_at_cp: str | None) -> Verdict:
    if cp is None or cp["last_id"] == 0:
        return Verdict(True, checked, last)
    at = cp["at"]
    if last is None:
        return _bad("emptied", checked, last, 1, at=at, rows=cp["rows"], cp_last=cp["last_id"])
    if last < cp["last_id"]:
        return _bad("truncated", checked, last, last + 1, last=last, cp_last=cp["last_id"],
                    missing=cp["rows"] - counted, at=at)
    if head_at_cp is None or head_at_cp != cp["head"]:
        return _bad("head", checked, last, cp["last_id"], at=at)
    if counted != cp["rows"]:
        return _bad("count", checked, last, cp["last_id"], missing=cp["rows"] - counted, at=at)
    return Verdict(True, checked, last)


def verify_platform(app: Flask, s: Session, from_id: int | None = None) -> Verdict:
    """The platform's chain: its archives, its table, the newest checkpoint anywhere."""
    ring = audit.keyring(app)
    return verify(s, ring, archive_dir(app), anchors(app, ring), from_id)


# --- keys -------------------------------------------------------------------------------------

class ChainError(Exception):
    """An audit-chain operation refused (the command line says it)."""


def rotate_key(app: Flask, s: Session, actor_id: int | None = None) -> str:
    """A new audit key becomes current; the rotation is the first event under it, and a checkpoint
    follows (the caller commits first, then calls `write_checkpoint`)."""
    ring = audit.keyring(app)
    if not ring.from_files:
        raise ChainError("audit keys come from INKLESS_AUDIT_KEY: put the new key first there and restart")
    old = ring.current()[0]
    kid = ring.new_key_file()
    ring.make_current(kid)
    audit.record(s, "audit_key_rotated", "audit_key", kid, actor_id=actor_id, detail={"previous": old})
    return kid
