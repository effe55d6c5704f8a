"""Whether the platform stands (`/healthz`, and `inkless serve`/`init`/`worker` before they start):
the database answers a cheap query within a short time, and the data directory takes a file.

A check that fails names what failed in the user's language (service/outage.py), so a load balancer
sees 503 and an operator reads which part is down (R-OPS-3).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from flask import Flask, jsonify
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from . import db, outage
from .outage import Outage

log = logging.getLogger("inkless.health")

# PostgreSQL: the query may take this long (the connection itself is bounded by connect_timeout,
# service/db.py). SQLite reads never wait for the writer (WAL), so they need no bound.
STATEMENT_TIMEOUT_MS = 2000


def database(app: Flask) -> Outage | None:
    """None when the database answers; else what is wrong with it."""
    s = app.extensions["inkless.db"]()
    try:
        with db.reading(s):
            if s.bind.dialect.name == "postgresql":
                s.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                s.execute(text("SELECT 1"))
            else:  # reads the file, which SELECT 1 would not
                s.execute(text("SELECT count(*) FROM sqlite_master"))
    except DBAPIError as e:
        # Whatever the reason (a timeout, a missing file), a database that does not answer is down.
        return outage.classify(e) or Outage(outage.DATABASE_UNAVAILABLE, outage.reason(e.orig))
    finally:
        s.close()
    return None


def storage(directory: Path) -> Outage | None:
    """None when a file can be made, written and removed in `directory`; else why not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".healthz-", dir=directory)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as e:
        return outage.classify(e) or Outage(outage.STORAGE_UNAVAILABLE, outage.reason(e))
    return None


def storage_dirs(app: Flask) -> list[Path]:
    """The data directory, and a SQLite database's directory when it lies elsewhere."""
    data_dir = Path(app.config["INKLESS"].data_dir)
    dirs = [data_dir]
    engine = app.extensions["inkless.engine"]
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        db_dir = Path(engine.url.database).resolve().parent
        if db_dir != data_dir.resolve():
            dirs.append(db_dir)
    return dirs


def checks(app: Flask) -> dict[str, Outage | None]:
    found = {"database": database(app)}
    for i, directory in enumerate(storage_dirs(app)):
        found["data_dir" if i == 0 else "database_dir"] = storage(directory)
    return found


def register(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        found = checks(app)
        failed = {name: problem for name, problem in found.items() if problem is not None}
        if not failed:
            return jsonify({"status": "ok", "checks": {name: {"ok": True} for name in found}})
        for name, problem in failed.items():
            log.warning("healthz: %s: %s (%s)", name, problem.code, problem.reason)
        first = next(iter(failed.values()))
        return jsonify({
            "status": "unavailable", "code": first.code, "message": first.message(),
            "failed": list(failed),
            "checks": {name: {"ok": True} if problem is None
                       else {"ok": False, "code": problem.code, "message": problem.message()}
                       for name, problem in found.items()},
        }), 503
