"""Time a backup, its verification (hashes + trial restore) and a forced restore (R-SEC-5).

    python bench/backup.py [--audit 50000] [--notifications 100000] [--files 200] [--file-kib 256]

A fresh SQLite data directory (left in a temporary directory, removed at the end) is migrated,
filled with one department and user, `--audit` chained audit events (the chain verifies),
`--notifications` inbox rows and `--files` plain blobs of `--file-kib` KiB each in the document
store; then service.backup's create, verify and restore(force=True) are timed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from service import audit, backup, create_app, migrate, org  # noqa: E402
from service.config import Config  # noqa: E402
from service.models import AuditEvent, Notification  # noqa: E402


def fill(app, audit_events: int, notifications: int, files: int, file_kib: int) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org.create_department(s, "HQ", "总部")
        user = org.create_user(s, "bench", "bench password 12", "HQ", "system_admin", [], False)
        s.flush()
        prev = s.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or audit.GENESIS
        rows = []
        at = datetime(2026, 1, 1, tzinfo=UTC)
        kid, key = audit.keyring(app).current()
        for i in range(audit_events):
            event = AuditEvent(at=at, actor_id=user.id, action="bench", object_type="bench", object_id=str(i),
                               detail={"i": i}, client_addr=None, prev_hash=prev, key_id=kid)
            event.hash = audit.digest(prev, audit.fields(event), kid, key)
            prev = event.hash
            rows.append({"at": at, "actor_id": user.id, "action": "bench", "object_type": "bench",
                         "object_id": str(i), "detail": {"i": i}, "client_addr": None, "prev_hash": event.prev_hash,
                         "hash": event.hash, "key_id": kid})
        for start in range(0, len(rows), 5000):
            s.execute(insert(AuditEvent), rows[start:start + 5000])
        for start in range(0, notifications, 5000):
            s.execute(insert(Notification), [{"user_id": user.id, "kind": "task", "title": f"任务 {i}"}
                                             for i in range(start, min(notifications, start + 5000))])
        s.commit()
        s.close()
    blobs = app.extensions["inkless.documents"].blob_dir / "plain" / "be"
    blobs.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (blobs / f"be{i:062x}").write_bytes(os.urandom(file_kib * 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audit", type=int, default=50_000)
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-kib", type=int, default=256)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="inkless-bench-backup-"))
    try:
        app = create_app(Config.from_env(data_dir=root / "data", secret_key="bench", testing=True))
        migrate.upgrade(app.extensions["inkless.engine"])
        fill(app, args.audit, args.notifications, args.files, args.file_kib)
        with app.test_request_context():
            started = time.perf_counter()
            made = backup.create(app)
            created = time.perf_counter() - started
            started = time.perf_counter()
            record = backup.verify(app, made)
            verified = time.perf_counter() - started
            assert record["ok"], record["problems"]
            started = time.perf_counter()
            backup.restore(app, made, force=True)
            restored = time.perf_counter() - started
        print(f"rows {made.rows}, files {made.manifest['blobs']}, backup {made.size / 1024**2:.1f} MiB")
        print(f"create {created:.2f} s, verify (hashes + trial restore) {verified:.2f} s, restore --force {restored:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
