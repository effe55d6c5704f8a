"""Backups: create, verify, restore, prune (R-SEC-5, R-SEC-3, R-OPS-1).

A backup is a directory `<INKLESS_BACKUP_DIR>/<id>/` — the platform's second location: point the
setting at another disk or mount. It holds

    db/<table>.jsonl   every table, one JSON object a row, tables in dependency order; values are
                       plain JSON (datetimes ISO 8601, bytes base64), so a PostgreSQL backup
                       restores into SQLite and back; sealed with AES-256-GCM under a data key
                       of the backup's own, which the manifest holds wrapped by the current
                       document master key (not in the backup)
    blobs/plain|enc/…  the document store's files, copied as they are (secret content stays
                       encrypted; its keys are NOT in the backup — keep the key directory and
                       INKLESS_SECRET_KEY / INKLESS_MASTER_KEY safe separately)
    audit/archive/…    the audit log's signed archive files (service/audit_chain.py)
    audit-checkpoint.json  the audit chain's signed checkpoint, taken in the snapshot: the trial
                       restore's chain must reach it; it is also written to the checkpoint files
    manifest.json      created_at, schema revision, row counts, SHA-256 and size of every part,
                       the ids of the keys needed to open it (master keys, audit keys),
                       and an HMAC over all of it keyed from INKLESS_SECRET_KEY: editing a part
                       or the manifest is detected
    verification.json  the last verification's result (outside the manifest: it changes)

The tables are read in one read transaction (PostgreSQL REPEATABLE READ, SQLite a deferred
transaction over WAL), so the dump is a snapshot. `verify` checks the HMAC and every hash and that
every key it needs is here, then restores into a scratch SQLite database and compares row counts
and the audit chain. `restore` checks the same and that no server or worker uses the database
(service/liveness.py) before it replaces anything, then writes the blobs first (a row never points at a missing file), then every table in one
transaction, refusing a non-empty database unless forced, and audits itself on the restored chain.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from flask import Flask
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Table,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    null,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from engine import clock

from . import audit, audit_chain
from . import models as _models  # noqa: F401 - registers the tables
from .db import Base
from .documents import models as _document_models  # noqa: F401

log = logging.getLogger("inkless.backup")
MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
ARCHIVES = "audit/archive"  # the audit log's archive files (service/audit_chain.py)
FORMAT = 2  # 2: the database part is encrypted (format 1 backups, in plain JSON, still restore)
BATCH = 500
READ_SIZE = 1024 * 1024


class BackupError(Exception):
    """A backup cannot be used or a restore is refused; `code` says why (the CLI and pages word it)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Backup:
    id: str
    path: Path
    manifest: dict | None  # the manifest body as stored (not yet checked); None if unreadable
    verification: dict | None = field(default=None)

    @property
    def created_at(self) -> datetime | None:
        raw = (self.manifest or {}).get("created_at")
        return datetime.fromisoformat(raw) if raw else None

    @property
    def rows(self) -> int:
        return sum((self.manifest or {}).get("tables", {}).values())

    @property
    def size(self) -> int:
        return sum(p["size"] for p in (self.manifest or {}).get("parts", {}).values())


# --- where, and which tables ------------------------------------------------------------------

def location(app: Flask, copy: bool = False) -> Path | None:
    """Where backups are written; with `copy`, where their copies go (None: not configured)."""
    cfg = app.config["INKLESS"]
    if copy:
        return Path(cfg.backup_copy_dir) if cfg.backup_copy_dir else None
    return Path(cfg.backup_dir) if cfg.backup_dir else Path(cfg.data_dir) / "backups"


class Progress:
    """What a long backup operation says as it goes, in parts (a table, a file): the CLI draws a
    bar from it; the nightly job and the page pass none."""

    def begin(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


QUIET = Progress()


def _blob_dir(app: Flask) -> Path:
    from .documents import settings

    return app.extensions[settings.EXTENSION].blob_dir


def _tables() -> list[Table]:
    """Every table the models know, parents before children."""
    return list(Base.metadata.sorted_tables)


def _deferred(tables: list[Table]) -> dict[str, list[str]]:
    """Nullable foreign-key columns pointing at their own table or a later one (departments.head_id
    → users, departments.parent_id → departments): inserted empty, filled in once every row is in."""
    index = {t.name: i for i, t in enumerate(tables)}
    out: dict[str, list[str]] = {}
    for i, table in enumerate(tables):
        if len(table.primary_key.columns) != 1:
            continue
        cols = [fk.parent.name for fk in table.foreign_keys
                if fk.parent.nullable and index.get(fk.column.table.name, -1) >= i]
        if cols:
            out[table.name] = sorted(set(cols))
    return out


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


# --- values to JSON and back ------------------------------------------------------------------

def _encode(value):
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _python_type(column):
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    try:
        return kind.python_type
    except NotImplementedError:
        return None


def _decoder(column):
    kind = _python_type(column)
    if kind is datetime:
        return datetime.fromisoformat
    if kind is date:
        return date.fromisoformat
    if kind is time:
        return time.fromisoformat
    if kind is bytes:
        return base64.b64decode
    if kind is Decimal:
        return Decimal
    return None


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _mac(secret_key: str, body: dict) -> str:
    # A key of its own, derived from the platform secret: a manifest MAC is no token or cookie MAC.
    key = hmac.new(secret_key.encode(), b"inkless backup manifest v1", hashlib.sha256).digest()
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


# --- the database part's encryption, and the keys a backup needs --------------------------------

CIPHER = "AES-256-GCM"


class _Sealing:
    """The database part is sealed with a data key of its own (AES-256-GCM, in chunks like the
    documents' content); the manifest holds it wrapped by the current master key, never in clear.
    Without the master keys a backup is unreadable — keep the key directory apart from it."""

    def __init__(self, key: bytes, master_id: str, wrapped: bytes):
        self.key, self.master_id, self.wrapped = key, master_id, wrapped
        self.files: dict[str, dict] = {}

    @classmethod
    def new(cls, app: Flask) -> _Sealing:
        from .documents import crypto, objects

        master_id, master = objects.keyring(app).current()
        key = crypto.new_data_key(CIPHER)
        return cls(key, master_id, crypto.wrap_key(master, CIPHER, key))

    def writer(self, part: _Part):
        from .documents import crypto

        prefix = os.urandom(crypto.NONCE_PREFIX_SIZE)
        self.files[part.rel] = {"nonce_prefix": base64.b64encode(prefix).decode(), "size": 0}
        return _Counting(crypto.EncryptingWriter(part, CIPHER, self.key, part.rel, READ_SIZE, prefix),
                         self.files[part.rel])

    def manifest(self) -> dict:
        return {"algorithm": CIPHER, "chunk_size": READ_SIZE, "master_key_id": self.master_id,
                "wrapped_key": base64.b64encode(self.wrapped).decode(), "files": self.files}


class _Counting:
    """The plaintext's size, which decryption checks."""

    def __init__(self, sink, record: dict):
        self.sink, self.record = sink, record

    def write(self, data: bytes) -> None:
        self.sink.write(data)
        self.record["size"] += len(data)

    def close(self) -> None:
        self.sink.close()


def _keys_needed(app: Flask, conn: Connection) -> dict:
    """The key ids without which the backup cannot be opened or checked: master keys (the
    database part, the secret documents' data keys) and audit keys (the chain, its archives)."""
    from .documents.models import DataKey
    from .models import AuditEvent

    documents = sorted(set(conn.execute(select(DataKey.master_key_id).distinct()).scalars()))
    audit_keys = set(conn.execute(select(AuditEvent.key_id).where(AuditEvent.key_id.is_not(None)).distinct()).scalars())
    for archive in audit_chain.archives(audit_chain.archive_dir(app)):
        try:
            audit_keys.add(json.loads(archive.sig_path.read_text())["body"]["key_id"])
        except (OSError, ValueError, KeyError):
            pass  # a broken archive fails the trial restore's chain instead
        audit_keys.update(r["kid"] for r in audit_chain.archived_rows(archive) if r["kid"])
    audit_keys.add(audit.keyring(app).current()[0])  # the one the backup's checkpoint is signed with
    return {"documents": documents, "audit": sorted(audit_keys)}


def missing_keys(app: Flask, body: dict) -> list[str]:
    """What this installation lacks to open the backup, in words; [] if nothing."""
    from .documents import objects

    masters, audits = objects.keyring(app), audit.keyring(app)
    missing = []
    db_key = (body.get("encryption") or {}).get("master_key_id")
    if db_key and not _has(masters, db_key):
        missing.append(f"master key {db_key} (the database part)")
    for kid in body.get("keys", {}).get("documents", []):
        if not _has(masters, kid):
            missing.append(f"master key {kid} (secret documents)")
    for kid in body.get("keys", {}).get("audit", []):
        if not _has(audits, kid):
            missing.append(f"audit key {kid} (the audit chain)")
    return missing


def _has(ring, kid: str) -> bool:
    from .documents.crypto import CorruptObject

    try:
        ring.get(kid)
        return True
    except CorruptObject:
        return False


def _keys_problem(missing: list[str]) -> dict:
    return {"part": "keys", "problem": "keys_missing",
            "detail": "; ".join(missing) + " — restore the key directory (keys/, keys/audit/) or set "
                                           "INKLESS_MASTER_KEY / INKLESS_AUDIT_KEY"}


def _data_key(app: Flask, body: dict) -> bytes | None:
    from .documents import crypto, objects

    sealed = body.get("encryption")
    if not sealed:
        return None  # a backup of format 1, before the database part was encrypted
    master = objects.keyring(app).get(sealed["master_key_id"])
    return crypto.unwrap_key(master, sealed["algorithm"], base64.b64decode(sealed["wrapped_key"]))


def _plain_lines(path: Path, rel: str, body: dict, data_key: bytes | None) -> Iterator[str]:
    from .documents import crypto

    if data_key is None:
        with open(path, encoding="utf-8") as f:
            yield from f
        return
    sealed = body["encryption"]
    meta = sealed["files"][rel]
    with crypto.DecryptingReader(open(path, "rb"), sealed["algorithm"], data_key, rel, sealed["chunk_size"],
                                 base64.b64decode(meta["nonce_prefix"]), meta["size"]) as reader:
        rest = b""
        for chunk in reader.chunks():
            rest += chunk
            *lines, rest = rest.split(b"\n")
            for line in lines:
                yield line.decode("utf-8")
        if rest:
            yield rest.decode("utf-8")


# --- create -----------------------------------------------------------------------------------

@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction over the whole dump."""
    if engine.dialect.name == "sqlite":
        # The platform's engine opens every transaction with BEGIN IMMEDIATE (the write lock);
        # a plain deferred BEGIN on a connection of its own reads a WAL snapshot and blocks no one.
        snap = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(snap, "connect")
        def _autocommit(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        @event.listens_for(snap, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN")

        try:
            with snap.connect() as conn, conn.begin():
                yield conn
        finally:
            snap.dispose()
    else:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn


class _Part:
    """A file of the backup being written, hashed on the way."""

    def __init__(self, root: Path, rel: str):
        self.rel = rel
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)
        self.size += len(data)

    def close(self, parts: dict) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        parts[self.rel] = {"sha256": self.sha.hexdigest(), "size": self.size}


def _new_id(root: Path) -> str:
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    candidate, n = stamp, 1
    while (root / candidate).exists() or (root / f"{candidate}.partial").exists():
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


def create(app: Flask, progress: Progress = QUIET) -> Backup:
    """Write a new backup and return it (not yet verified)."""
    root = location(app)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup_id = _new_id(root)
    work = root / f"{backup_id}.partial"
    work.mkdir(mode=0o700)
    parts: dict[str, dict] = {}
    counts: dict[str, int] = {}
    tables = _tables()
    created_at = clock.now()  # the snapshot's moment (it starts right after)
    sealing = _Sealing.new(app)
    files = [d for d in (_blob_dir(app) / "plain", _blob_dir(app) / "enc", audit_chain.archive_dir(app)) if d.is_dir()]
    progress.begin("backup", len(tables) + sum(1 for d in files for p in d.rglob("*") if p.is_file()))
    try:
        with _snapshot(app.extensions["inkless.engine"]) as conn:
            revision = _revision(conn)
            for table in tables:
                part = _Part(work, f"db/{table.name}.jsonl")
                sink = sealing.writer(part)
                n = 0
                for row in conn.execute(select(table).order_by(*table.primary_key.columns)).mappings():
                    line = json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False, sort_keys=True)
                    sink.write(line.encode() + b"\n")
                    n += 1
                sink.close()
                part.close(parts)
                counts[table.name] = n
                progress.advance()
            keys = _keys_needed(app, conn)
            # Still inside the snapshot: every blob its rows name was written before they committed.
            blobs = _copy_blobs(_blob_dir(app), work, parts, progress)
            _copy_files(audit_chain.archive_dir(app), work, ARCHIVES, parts, progress)
            checkpoint = audit_chain.signed_checkpoint(app, conn)
        part = _Part(work, audit_chain.CHECKPOINT)
        part.write(json.dumps(checkpoint, ensure_ascii=False, sort_keys=True).encode())
        part.close(parts)
        body = {
            "format": FORMAT, "id": backup_id, "created_at": created_at.isoformat(),
            "schema_revision": revision, "database": app.extensions["inkless.engine"].dialect.name,
            "order": [t.name for t in tables], "tables": counts, "blobs": blobs, "parts": parts,
            "encryption": sealing.manifest(), "keys": keys,
        }
        manifest = {"body": body, "hmac": _mac(app.config["INKLESS"].secret_key, body)}
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True))
        os.replace(work, root / backup_id)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    audit_chain.publish(app, checkpoint)  # every backup anchors the chain outside the database too
    log.info("backup %s: %d rows, %d files", backup_id, sum(counts.values()), blobs)
    return Backup(backup_id, root / backup_id, body)


def _copy_blobs(blob_dir: Path, work: Path, parts: dict, progress: Progress = QUIET) -> int:
    # tmp/ holds uploads in progress: nothing refers to them yet
    return sum(_copy_files(blob_dir / sub, work, f"blobs/{sub}", parts, progress) for sub in ("plain", "enc"))


def _copy_files(base: Path, work: Path, prefix: str, parts: dict, progress: Progress = QUIET) -> int:
    """Every file under `base` into the backup as `<prefix>/…`; returns how many."""
    copied = 0
    if not base.is_dir():
        return 0
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        try:
            source = open(path, "rb")
        except FileNotFoundError:
            continue  # removed since the listing (purged); a row of the snapshot naming it fails verify
        with source:
            part = _Part(work, f"{prefix}/{path.relative_to(base).as_posix()}")
            while chunk := source.read(READ_SIZE):
                part.write(chunk)
        part.close(parts)
        copied += 1
        progress.advance()
    return copied


# --- list, integrity, verify ------------------------------------------------------------------

def _read(path: Path) -> Backup:
    manifest = verification = None
    try:
        manifest = json.loads((path / MANIFEST).read_text()).get("body")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        verification = json.loads((path / VERIFICATION).read_text())
    except (OSError, ValueError):
        pass
    return Backup(path.name, path, manifest, verification)


def all_backups(app: Flask, copy: bool = False) -> list[Backup]:
    """Newest first (with `copy`, the copies in the copy location)."""
    root = location(app, copy)
    if root is None or not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial") and (p / MANIFEST).exists()]
    return [_read(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]


def get(app: Flask, backup_id: str, copy: bool = False) -> Backup:
    root = location(app, copy)
    if root is None:
        raise BackupError("not_found", "no copy location is configured (INKLESS_BACKUP_COPY_DIR)")
    path = root / backup_id
    # Only a plain directory name inside the backup location (no "..", no separators).
    if "/" in backup_id or "\\" in backup_id or backup_id.startswith(".") or not (path / MANIFEST).is_file():
        raise BackupError("not_found", f"no backup {backup_id!r} in {root}")
    return _read(path)


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_SIZE):
            sha.update(chunk)
    return sha.hexdigest()


def integrity(app: Flask, backup: Backup, progress: Progress = QUIET) -> tuple[dict | None, list[dict]]:
    """The manifest body if its HMAC holds, and the problems found: each {"part", "problem"}."""
    try:
        manifest = json.loads((backup.path / MANIFEST).read_text())
        body, mac = manifest["body"], manifest["hmac"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, [{"part": MANIFEST, "problem": "unreadable"}]
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(app.config["INKLESS"].secret_key, body)):
        return None, [{"part": MANIFEST, "problem": "signature"}]
    problems = []
    progress.begin("check", len(body["parts"]))
    for rel, expected in sorted(body["parts"].items()):
        path = backup.path / rel
        if not path.is_file():
            problems.append({"part": rel, "problem": "missing"})
        elif path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
            problems.append({"part": rel, "problem": "checksum"})
        progress.advance()
    for path in sorted(backup.path.rglob("*")):
        rel = path.relative_to(backup.path).as_posix()
        if path.is_file() and rel not in body["parts"] and rel not in (MANIFEST, VERIFICATION):
            problems.append({"part": rel, "problem": "unlisted"})
    return body, problems


def _rows(backup_path: Path, table: Table, body: dict, data_key: bytes | None) -> Iterator[dict]:
    decoders = {c.name: d for c in table.columns if (d := _decoder(c)) is not None}
    rel = f"db/{table.name}.jsonl"
    for line in _plain_lines(backup_path / rel, rel, body, data_key):
        if line.strip():
            row = json.loads(line)
            for name, decode in decoders.items():
                if row.get(name) is not None:
                    row[name] = decode(row[name])
            yield row


def _pk_name(table: Table) -> str:
    return next(iter(table.primary_key.columns)).name


def _json_nulls(table: Table) -> dict[str, list]:
    """Nullable JSON columns: a None read back is inserted as JSON null; these lists collect the
    rows to set to SQL NULL afterwards, as they were (an IS NULL filter must find them again)."""
    if len(table.primary_key.columns) != 1:
        return {}
    out = {}
    for column in table.columns:
        kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
        if column.nullable and isinstance(kind, JSON):
            out[column.name] = []
    return out


def _restore_sql_nulls(conn: Connection, table: Table, json_nulls: dict[str, list]) -> None:
    pk = next(iter(table.primary_key.columns))
    for name, pks in json_nulls.items():
        for start in range(0, len(pks), BATCH):
            conn.execute(table.update().where(pk.in_(pks[start:start + BATCH])).values({name: null()}))


def _load(conn: Connection, backup_path: Path, body: dict, data_key: bytes | None,
          progress: Progress = QUIET) -> dict[str, int]:
    """Insert every row of the backup; returns the counts inserted."""
    known = {t.name: t for t in _tables()}
    missing = [name for name in body["order"] if name not in known]
    if missing or set(known) - set(body["order"]):
        raise BackupError("schema", f"tables differ from this version's: {sorted(set(known) ^ set(body['order']))}")
    tables = [known[name] for name in body["order"]]
    deferred = _deferred(_tables())
    counts: dict[str, int] = {}
    later: list[tuple[Table, list[dict]]] = []
    progress.begin("load", len(tables))
    for table in tables:
        cols = deferred.get(table.name, [])
        pk = next(iter(table.primary_key.columns)).name if cols else None
        updates: list[dict] = []
        batch: list[dict] = []
        json_nulls = _json_nulls(table)
        n = 0
        for row in _rows(backup_path, table, body, data_key):
            for name, pks in json_nulls.items():
                if row.get(name) is None:
                    pks.append(row[_pk_name(table)])
            if cols:
                values = {c: row[c] for c in cols if row.get(c) is not None}
                if values:
                    updates.append({"_pk": row[pk], **{f"_{c}": row.get(c) for c in cols}})
                row.update({c: None for c in cols})
            batch.append(row)
            n += 1
            if len(batch) >= BATCH:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
        counts[table.name] = n
        _restore_sql_nulls(conn, table, json_nulls)
        if updates:
            later.append((table, updates))
        progress.advance()
    for table, updates in later:
        cols = deferred[table.name]
        pk = next(iter(table.primary_key.columns))
        stmt = table.update().where(pk == bindparam("_pk")).values({c: bindparam(f"_{c}") for c in cols})
        conn.execute(stmt, updates)
    return counts


def problem_text(p: dict) -> str:
    return f"{p['part']}: {p['problem']}" + (f" ({p['detail']})" if p.get("detail") else "")


def verify(app: Flask, backup: Backup, progress: Progress = QUIET) -> dict:
    """Check integrity, then restore into a scratch SQLite database and compare; the record is
    written next to the backup and returned: {"at", "ok", "problems", "tables"}."""
    body, problems = integrity(app, backup, progress)
    restored: dict[str, int] = {}
    if body is not None and not problems:
        missing = missing_keys(app, body)
        problems = [_keys_problem(missing)] if missing else _trial_restore(app, backup, body, restored, progress)
    record = {"at": clock.now().isoformat(), "ok": not problems, "problems": problems, "tables": restored}
    (backup.path / VERIFICATION).write_text(json.dumps(record, ensure_ascii=False, indent=1))
    backup.verification = record
    return record


def _chain(app: Flask, s: Session, backup: Backup) -> audit_chain.Verdict:
    """The backup's audit chain, against the checkpoint taken with its snapshot."""
    ring = audit.keyring(app)
    anchor = audit_chain.anchor_of(ring, [backup.path / audit_chain.CHECKPOINT])
    return audit_chain.verify(s, ring, backup.path / ARCHIVES, anchor)


def _trial_restore(app: Flask, backup: Backup, body: dict, restored: dict, progress: Progress = QUIET) -> list[dict]:
    problems: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="inkless-verify-") as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'trial.db'}", poolclass=NullPool)
        try:
            Base.metadata.create_all(engine)
            with engine.begin() as conn:
                restored.update(_load(conn, backup.path, body, _data_key(app, body), progress))
            for name, expected in body["tables"].items():
                if restored.get(name) != expected:
                    problems.append({"part": f"db/{name}.jsonl", "problem": "count",
                                     "detail": f"{restored.get(name)} != {expected}"})
            with Session(engine) as s:
                chain = _chain(app, s, backup)
                if not chain.ok:
                    problems.append({"part": "db/audit_events.jsonl", "problem": "audit_chain", "detail": chain.detail})
                problems.extend(_missing_blobs(s, body))
        except BackupError as e:
            problems.append({"part": "db", "problem": "restore_failed", "detail": str(e)})
        except Exception as e:  # noqa: BLE001 - any failure to load is the finding
            problems.append({"part": "db", "problem": "restore_failed", "detail": f"{type(e).__name__}: {e}"[:500]})
        finally:
            engine.dispose()
    return problems


def _missing_blobs(s: Session, body: dict) -> list[dict]:
    """Every stored object the rows name has its file in the backup."""
    from .documents.models import StoredObject

    out = []
    for name, algorithm in s.execute(select(StoredObject.name, StoredObject.algorithm)):
        rel = f"blobs/plain/{name[:2]}/{name}" if algorithm == "none" else f"blobs/enc/{name[:2]}/{name}"
        if rel not in body["parts"]:
            out.append({"part": rel, "problem": "missing"})
    return out


# --- restore ----------------------------------------------------------------------------------

def _nonempty(conn: Connection) -> list[str]:
    return [t.name for t in _tables() if conn.execute(select(func.count()).select_from(t)).scalar()]


def _empty_tables(conn: Connection) -> None:
    """--force: every row goes, children first; the columns that point forward are cleared first."""
    tables = _tables()
    for name, cols in _deferred(tables).items():
        table = Base.metadata.tables[name]
        conn.execute(table.update().values({c: None for c in cols}))
    for table in reversed(tables):
        conn.execute(table.delete())


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL: explicit ids were inserted; the next generated id must follow the largest."""
    if conn.dialect.name != "postgresql":
        return
    for table in _tables():
        pks = list(table.primary_key.columns)
        if len(pks) != 1 or pks[0].autoincrement is False or _python_type(pks[0]) is not int:
            continue
        col = pks[0].name
        conn.execute(text(
            f'SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX("{col}"), 1), MAX("{col}") IS NOT NULL) '
            f'FROM "{table.name}"'), {"t": table.name, "c": col})


def restore(app: Flask, backup: Backup, force: bool = False, actor_id: int | None = None,
            processes_stopped: bool = False, progress: Progress = QUIET) -> dict[str, int]:
    """Return the platform to `backup`. Refuses, before anything is replaced: a damaged backup,
    one whose keys this installation lacks, a database a server or worker is using (records in
    `<data dir>/run/`; records left by processes that are gone only with `processes_stopped`),
    another schema revision, and a database with rows unless `force`."""
    from . import liveness, migrate

    body, problems = integrity(app, backup, progress)
    if body is None or problems:
        raise BackupError("damaged", "; ".join(problem_text(p) for p in problems))
    missing = missing_keys(app, body)
    if missing:
        raise BackupError("keys_missing", "the keys to open this backup are not here: " + _keys_problem(missing)["detail"])
    records = liveness.present(app)
    live = [r.describe() for r in records if r.live]
    if live:
        raise BackupError("in_use", "the database is in use by " + ", ".join(live) + ": stop every server and worker first")
    if records and not processes_stopped:
        raise BackupError("in_use", "records of " + ", ".join(r.describe() for r in records) + " remain (killed or "
                          "not yet stopped?): once every server and worker is stopped, pass --processes-stopped")
    liveness.clear_stale(records)
    engine = app.extensions["inkless.engine"]
    with engine.connect() as conn:
        has_schema = _revision(conn) is not None
    if not has_schema:
        migrate.upgrade(engine)  # a new, empty database: create the schema first
    with engine.connect() as conn:
        revision = _revision(conn)
        nonempty = _nonempty(conn)
    if revision != body["schema_revision"]:
        raise BackupError("revision", f"the backup is of schema revision {body['schema_revision']}, "
                                      f"the database is at {revision}: upgrade or downgrade first")
    if nonempty and not force:
        raise BackupError("not_empty", f"the database is not empty ({', '.join(nonempty[:5])}…); use --force")
    superseded = audit_chain.anchors(app, audit.keyring(app)).checkpoint
    _restore_blobs(backup.path, _blob_dir(app), body)
    _restore_files(backup.path, ARCHIVES, audit_chain.archive_dir(app), body)
    with engine.begin() as conn:
        if force:
            _empty_tables(conn)
        counts = _load(conn, backup.path, body, _data_key(app, body), progress)
        _reset_sequences(conn)
        s = Session(bind=conn)
        chain = _chain(app, s, backup)
        if not chain.ok:
            raise BackupError("audit_chain", f"the restored audit chain is broken: {chain.detail}")
        # The events after the backup are gone from the chain: the record says up to where it reached.
        audit.record(s, "backup_restored", "backup", backup.id, actor_id=actor_id,
                     detail={"created_at": body["created_at"], "force": force, "rows": sum(counts.values()),
                             "superseded_checkpoint": superseded and {k: superseded[k] for k in ("last_id", "rows", "at")}})
        s.flush()
    with engine.connect() as conn:
        audit_chain.write_checkpoint(app, conn, replace=True)  # the chain moved back on purpose
    return counts


def _restore_blobs(backup_path: Path, blob_dir: Path, body: dict) -> None:
    """Files the store lacks are copied back; present ones are the same bytes (plain files are
    named by their hash, encrypted ones by a random name never reused)."""
    _restore_files(backup_path, "blobs", blob_dir, body)


def _restore_files(backup_path: Path, prefix: str, target_dir: Path, body: dict) -> None:
    """The backup's files under `prefix` that `target_dir` lacks (audit archives, like blobs, are
    never rewritten under the same name)."""
    for rel in body["parts"]:
        if not rel.startswith(prefix + "/"):
            continue
        target = target_dir / rel[len(prefix) + 1:]
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(target.name + ".restoring")
        shutil.copyfile(backup_path / rel, tmp)
        os.replace(tmp, target)


# --- retention --------------------------------------------------------------------------------

def prune(app: Flask) -> list[str]:
    """Keep the newest `backup_keep` backups in each location; remove older ones and abandoned
    partial ones."""
    keep = max(1, app.config["INKLESS"].backup_keep)
    removed = []
    for copy in (False, True):
        root = location(app, copy)
        if root is None:
            continue
        for old in all_backups(app, copy)[keep:]:
            shutil.rmtree(root / old.id)
            removed.append(old.id)
        for partial in root.glob("*.partial") if root.is_dir() else []:
            if partial.stat().st_mtime < clock.now().timestamp() - 86400:
                shutil.rmtree(partial, ignore_errors=True)
    return removed


def copy_out(app: Flask, backup: Backup, progress: Progress = QUIET) -> Backup | None:
    """Copy a backup to the copy location (None when none is configured); the copy is a backup of
    its own there, verified on its own — the first location failing does not lose it."""
    root = location(app, copy=True)
    if root is None:
        return None
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = root / f"{backup.id}.partial"
    shutil.rmtree(work, ignore_errors=True)
    files = [p for p in sorted(backup.path.rglob("*")) if p.is_file() and p.name != VERIFICATION]
    progress.begin("copy", len(files))
    try:
        for path in files:
            target = work / path.relative_to(backup.path)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(path, target)
            progress.advance()
        os.replace(work, root / backup.id)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("backup %s copied to %s", backup.id, root)
    return _read(root / backup.id)
