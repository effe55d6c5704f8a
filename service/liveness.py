"""Which platform processes use the database now (R-SEC-5): a restore must not run under them.

`inkless serve` and `inkless worker` each write a record `<data dir>/run/<kind>-<host>-<pid>.json`
and hold an exclusive `flock` on it for as long as they live; a thread touches it every
HEARTBEAT seconds. On the same host a record whose lock can be taken belongs to a process that is
gone (killed, crashed); from another host sharing the data directory, a record touched within three
heartbeats counts as live. A process that exits normally removes its record.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from engine import clock

HEARTBEAT = 10.0
HOST = socket.gethostname()


def run_dir(app: Flask) -> Path:
    return Path(app.config["INKLESS"].data_dir) / "run"


@dataclass
class Presence:
    kind: str
    pid: int
    host: str
    started_at: str
    path: Path
    live: bool

    def describe(self) -> str:
        return f"{self.kind} (process {self.pid} on {self.host}, since {self.started_at})"


def announce(app: Flask, kind: str) -> Path:
    """Record this process as using the database until it exits."""
    directory = run_dir(app)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{kind}-{HOST}-{os.getpid()}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held by this open file until the process ends
    record = {"kind": kind, "pid": os.getpid(), "host": HOST, "started_at": clock.now().isoformat()}
    os.write(fd, json.dumps(record).encode())
    os.fsync(fd)

    def beat():
        while True:
            time.sleep(HEARTBEAT)
            try:
                os.utime(path)
            except FileNotFoundError:
                return

    threading.Thread(target=beat, name="inkless-liveness", daemon=True).start()

    owner = os.getpid()
    # A forked child (a gunicorn web worker) must not keep the lock alive after this process is
    # killed: the record then reads as left behind, which is what it is.
    os.register_at_fork(after_in_child=lambda: _close_quietly(fd))

    def leave():
        # Forked children (gunicorn's web workers) inherit atexit handlers: only the process that
        # announced itself may remove its record.
        if os.getpid() == owner:
            path.unlink(missing_ok=True)
            _close_quietly(fd)

    atexit.register(leave)
    return path


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _live(path: Path, host: str) -> bool:
    if host != HOST:
        try:
            return time.time() - path.stat().st_mtime < 3 * HEARTBEAT
        except FileNotFoundError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this call took
    return False


def present(app: Flask) -> list[Presence]:
    """Every record, live or left behind."""
    directory = run_dir(app)
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            record = {}
        host = record.get("host", HOST)
        found.append(Presence(record.get("kind", path.stem), record.get("pid", 0), host,
                              record.get("started_at", "?"), path, _live(path, host)))
    return found


def clear_stale(records: list[Presence]) -> None:
    for record in records:
        if not record.live:
            record.path.unlink(missing_ok=True)
