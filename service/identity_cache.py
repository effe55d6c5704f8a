"""Who holds an API token, remembered between requests, so a request does not read the token, its
user and the user's groups again — with revocation still taking effect on the next request.

A remembered caller is used only while nothing that could change it has been committed since it
was read. Any statement that updates or deletes a token, updates or deletes a user, or changes a
group membership (whoever sends it: a request, the command line, a worker) marks its transaction;
when that transaction commits, every process forgets every caller it remembers:
- on PostgreSQL by NOTIFY, which the database delivers at commit to a listening connection in each
  process (no listener connected, nothing is remembered);
- on SQLite by a small file beside the database, rewritten after the commit with a new random
  value, read before each use (one `read` of a few bytes; a database in memory remembers nothing).
A caller is remembered under the generation seen *before* it was read, so a change committed while
it was being read makes it stale at once. Entries also end with their token and after `TTL`, which
bounds what only a change made behind the platform's back (SQL typed by hand) could leave.

Only API tokens are remembered: a page session's last-seen time is written as the session is
used, and its requests are dominated by rendering anyway.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import db
from .models import AuthToken, User, UserGroup

log = logging.getLogger("inkless.identity_cache")

TTL = 60.0  # seconds
MAX_ENTRIES = 10_000
CHANNEL = "inkless_identity"
_LISTEN_CHECK = 5.0  # seconds between the listener's liveness checks
_CHANGED = "inkless.identity_changed"
_NOTIFIED = "inkless.identity_notified"

# Statements that can change a remembered caller. A new token or user changes nobody's; a page
# session's last-seen time (the one column set) is not remembered.
_CHANGES = re.compile(
    r'^\s*(?:(?:UPDATE|DELETE\s+FROM)\s+"?(?:users|auth_tokens)\b|(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?user_groups\b|TRUNCATE\b.*\b(?:users|auth_tokens|user_groups)\b)',
    re.IGNORECASE)
_SEEN_ONLY = re.compile(r'^\s*UPDATE\s+"?auth_tokens"?\s+SET\s+last_seen_at\s*=\s*\S+\s+WHERE\b', re.IGNORECASE)


class Generation:
    """The generation of callers' records in one database, as this process knows it. `current()`
    is None when this process cannot know of changes (remember nothing)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self._local += 1

    def current(self):
        return self._local

    def committed(self) -> None:
        """A transaction that changed callers' records has committed (in this process)."""
        self.bump()


class FileGeneration(Generation):
    """SQLite: the other processes on this database learn of a change from a file beside it."""

    def __init__(self, engine: Engine, path: Path):
        super().__init__(engine)
        self.path = path

    def _shared(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                return f.read(64)
        except FileNotFoundError:
            return b""
        except OSError:
            return None

    def current(self):
        shared = self._shared()
        return None if shared is None else (self._local, shared)

    def committed(self) -> None:
        self.bump()
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            temporary.write_bytes(secrets.token_hex(16).encode("ascii"))
            os.replace(temporary, self.path)  # readers see the old value or the new, never half
        except OSError as err:
            # Unwritable storage: other processes may keep a caller up to TTL; say so.
            log.warning("could not tell other processes of a change to accounts (%s): %s", self.path, err)
            temporary.unlink(missing_ok=True)


class ListeningGeneration(Generation):
    """PostgreSQL: a thread of this process LISTENs on a connection of its own; while it is not
    listening (starting, reconnecting, after a fork) nothing is remembered."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self._listening = False
        self._pid = None
        self._stop = threading.Event()
        self._thread = None

    def current(self):
        if self._pid != os.getpid():
            self._start()
            return None
        return self._local if self._listening else None

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._listening = os.getpid(), False
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._listen, name="inkless-identity-listener", daemon=True)
            self._thread.start()

    def _connect(self):
        import psycopg

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(*args, **kwargs, autocommit=True)

    def _listen(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.bump()  # whatever was missed while not listening
                    self._listening = True
                    while not stop.is_set():
                        for _note in conn.notifies(timeout=_LISTEN_CHECK):
                            self.bump()
                        conn.execute("SELECT 1")  # a lost server raises here, not silently
            except Exception as err:  # noqa: BLE001 - any failure: stop remembering, try again
                if not stop.is_set():
                    log.info("identity listener reconnecting: %s", err)
            finally:
                self._listening = False
            stop.wait(1.0)


@dataclass(frozen=True)
class _Entry:
    generation: object
    stored: float
    expires_at: datetime
    token: dict
    user: dict
    groups: tuple[str, ...]


def _columns(obj, model) -> dict:
    return {attr.key: getattr(obj, attr.key) for attr in model.__mapper__.column_attrs}


class Callers:
    """An app's remembered callers, keyed by the token's digest."""

    def __init__(self, generation: Generation):
        self.generation = generation
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def before_read(self):
        """The generation to store what is read next under."""
        return self.generation.current()

    def remember(self, digest: str, generation, token: AuthToken, user: User) -> None:
        if generation is None or token.kind != "api":
            return
        entry = _Entry(generation, time.monotonic(), token.expires_at, _columns(token, AuthToken),
                       _columns(user, User), tuple(sorted(user.groups)))
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()

    def recall(self, s: Session, digest: str, now: datetime) -> tuple[AuthToken, User] | None:
        """The token and user, placed in `s` as if just read (no statement), or None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        generation = self.generation.current()
        if (generation is None or entry.generation != generation or entry.expires_at <= now
                or time.monotonic() - entry.stored > TTL):
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return _attach(s, _loaded(AuthToken, entry.token)), _attach_user(s, entry)


def _loaded(model, columns: dict):
    """An object holding `columns` as if just loaded. Built without the constructor: its attribute
    events (one per column) cost more than the rest of recalling a caller."""
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(columns)
    make_transient_to_detached(obj)  # as if loaded: no history, nothing to flush
    return obj


def _attach(s: Session, obj):
    s.add(obj)
    return obj


def _attach_user(s: Session, entry: _Entry) -> User:
    user = _loaded(User, entry.user)
    links = [_loaded(UserGroup, {"user_id": user.id, "group_code": code}) for code in entry.groups]
    set_committed_value(user, "group_links", links)
    s.add(user)  # and its links (the relationship's save-update cascade)
    return user


_GENERATIONS: dict[str, Generation] = {}
_GENERATIONS_LOCK = threading.Lock()


def generation_for(engine: Engine) -> Generation:
    """One generation per database per process, however many apps use it (the tests make many)."""
    key = engine.url.render_as_string(hide_password=False)
    with _GENERATIONS_LOCK:
        found = _GENERATIONS.get(key)
        if found is None:
            found = _GENERATIONS[key] = _make(engine)
        return found


def _make(engine: Engine) -> Generation:
    if engine.dialect.name == "postgresql":
        return ListeningGeneration(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileGeneration(engine, Path(database).with_name(Path(database).name + "-identity"))
    return _Forgetful(engine)


class _Forgetful(Generation):
    def current(self):
        return None


def watch(engine: Engine, factory, generation: Generation) -> None:
    """Mark transactions that change callers' records; tell every process when one commits."""

    @event.listens_for(engine, "begin")
    def _fresh(conn):
        conn.info[_CHANGED] = False
        conn.info[_NOTIFIED] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _note(conn, cursor, statement, parameters, context, executemany):
        if not _CHANGES.match(statement) or _SEEN_ONLY.match(statement):
            return
        conn.info[_CHANGED] = True
        if conn.dialect.name == "postgresql" and not conn.info.get(_NOTIFIED):
            # Delivered to every listener when (and only if) this transaction commits.
            cursor.connection.execute(f"SELECT pg_notify('{CHANNEL}', '')")
            conn.info[_NOTIFIED] = True

    @event.listens_for(factory, "after_commit")
    def _committed(s):
        conn = s.info.get(db.CONNECTION)
        if conn is not None and conn.info.get(_CHANGED):
            conn.info[_CHANGED] = False
            generation.committed()
