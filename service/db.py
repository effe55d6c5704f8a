"""The database: one SQLAlchemy engine per app, one session per request (or per CLI command).

Reads that must take no lock run inside `reading(s)`: the read phase of a unit that runs designer
code (service/optimistic.py) and authentication. On SQLite they run without BEGIN, so each
statement is its own read transaction and (in WAL mode) never waits for the writer nor holds the
write lock. A GET (or HEAD, OPTIONS) request reads the same way until it writes, if it does (an
audit row, a session's last-seen time): its first write takes the write lock (BEGIN IMMEDIATE)
and what follows is one transaction; code that must read under that lock before writing (the
audit chain's predecessor) takes it first with `hold_write_lock`. Every other transaction takes
the write lock up front.
"""
from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import psycopg
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import DateTime, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.util import identity_key

from . import outage


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # pysqlite's implicit transactions would let two writers both read before either
            # writes; BEGIN IMMEDIATE takes SQLite's single write lock up front instead.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            if not _reading.get() and not _safe_request():
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        # A server that drops packets instead of refusing must not hold a request (or /healthz)
        # for the operating system's TCP timeout; a connect_timeout in the URL wins.
        connect_args = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
        engine = create_engine(url, pool_size=10, max_overflow=20, connect_args=connect_args)
        _ping_idle_connections(engine)
        _begin_at_first_write(engine)
    _watch_writes(engine)
    _renew_stale_connections(engine)
    return engine


CONNECT_TIMEOUT = 5  # seconds
PING_IDLE_AFTER = 2.0  # seconds a pooled connection may rest before it is pinged at checkout
_IDLE_SINCE = "inkless.idle_since"


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled PostgreSQL connection at checkout only when it has rested a while.

    `pool_pre_ping` pings on every checkout: a round trip per request, about a tenth of a list's.
    A connection returned moments ago was talking to the server then; one that rested longer may
    have been cut (a restart, a proxy's idle timeout) and is pinged, and a dead one is replaced
    before the request sees it. A server that goes away while connections are busy fails the
    statements in flight whatever the ping does; the first failure discards the whole pool."""

    @event.listens_for(engine, "checkin")
    def _resting(_dbapi_conn, record):
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):
        since = record.info.get(_IDLE_SINCE)  # none on a connection just opened
        if since is None or time.monotonic() - since < PING_IDLE_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            raise DisconnectionError() from e  # the pool opens a new connection in its place


def _begin_at_first_write(engine: Engine) -> None:
    """PostgreSQL transactions begin at their first statement that needs one: a write, a lock,
    `SET LOCAL`, a streamed read. Until then the connection runs in autocommit, as SQLite's safe requests do: under
    READ COMMITTED each statement reads its own snapshot inside a transaction too, so reads lose
    nothing, and a request that only reads sends no BEGIN and no COMMIT (two of a list's four
    round trips). A connection given an isolation level (a backup's snapshot) is left to psycopg.

    Registered before every other statement listener, so what they send (identity_cache's
    pg_notify, which must wait for the commit) runs inside the transaction."""

    @event.listens_for(engine, "begin")
    def _autocommit(conn):
        if "isolation_level" not in conn.get_execution_options():
            dbapi = conn.connection.dbapi_connection
            if not dbapi.autocommit:
                dbapi.autocommit = True

    @event.listens_for(engine, "before_cursor_execute")
    def _begin(conn, cursor, statement, parameters, context, executemany):
        dbapi = cursor.connection  # given an isolation level, it is not in autocommit
        if (dbapi.autocommit and dbapi.pgconn.transaction_status == _PG_IDLE
                and (statement.lstrip()[:6].upper() != "SELECT" or _LOCKING.search(statement)
                     or isinstance(cursor, psycopg.ServerCursor))):  # DECLARE CURSOR: in a transaction
            dbapi.execute("BEGIN")

    @event.listens_for(engine, "after_cursor_execute")
    def _answer(conn, cursor, statement, parameters, context, executemany):
        pipeline = conn.info.get(_PIPELINE)
        if pipeline is not None and not context.execution_options.get(ANSWER_LATER):
            pipeline.sync()  # inside SQLAlchemy's handling: an error is wrapped and named as usual


def _renew_stale_connections(engine: Engine) -> None:
    """A SQLite connection opened while its file or directory was read-only (or missing) stays
    read-only after the storage is writable again: on such an error every pooled connection is
    dropped (SQLAlchemy's disconnect handling), so the next request opens fresh ones."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's dialect recognises its own lost connections

    @event.listens_for(engine, "handle_error")
    def _stale(context):
        found = outage.classify(context.original_exception)
        if found is not None and found.code in (outage.STORAGE_READ_ONLY, outage.DATABASE_UNAVAILABLE):
            context.is_disconnect = True


_reading: contextvars.ContextVar[bool] = contextvars.ContextVar("inkless_reading", default=False)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE", "WITH", "MERGE")
_WROTE = "inkless.wrote"
_LOCKED = "inkless.locked"  # the transaction took row or advisory locks (PostgreSQL)
# The audit chain's append (migrations 0018, 0019) is a SELECT that takes a lock and inserts.
_APPENDS = "inkless_audit_append("
_LOCKING = re.compile(r"\bFOR (UPDATE|NO KEY UPDATE|SHARE|KEY SHARE)\b|pg_advisory|inkless_audit_append\(",
                      re.IGNORECASE)
_PG_IDLE = 0  # libpq's PQTRANS_IDLE: no transaction open on the server
CONNECTION = _CONNECTION = "inkless.connection"  # the session's connection in its transaction


def _watch_writes(engine: Engine) -> None:
    """Remember whether a connection's transaction has written (`has_written`); refuse a write
    inside `reading`, which on SQLite would commit on its own, outside any transaction."""

    @event.listens_for(engine, "begin")
    def _fresh(conn):
        conn.info[_WROTE] = False
        conn.info[_LOCKED] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _note(conn, cursor, statement, parameters, context, executemany):
        writes = statement.lstrip()[:8].upper().startswith(_WRITES)
        if writes or _APPENDS in statement:
            if _reading.get():
                raise RuntimeError(f"a write inside a read phase: {statement[:80]}")
            _begin_sqlite_write(conn)
            conn.info[_WROTE] = True
        if not writes and conn.dialect.name == "postgresql" and _LOCKING.search(statement):
            conn.info[_LOCKED] = True


def _safe_request() -> bool:
    """A GET, HEAD or OPTIONS request being served: its transaction starts reading, without SQLite's
    write lock. Set by a before_request hook, so the request contexts the scheduler and the CLI push
    for their own work (never dispatched) keep taking the lock up front for their claims."""
    return has_request_context() and g.get(_SAFE_REQUEST, False)


_SAFE_REQUEST = "inkless_safe_request"


def _mark_safe_request() -> None:
    g.setdefault(_SAFE_REQUEST, request.method in ("GET", "HEAD", "OPTIONS"))


def _begin_sqlite_write(conn) -> None:
    """A SQLite connection that has read without BEGIN (a safe request) takes the write lock now."""
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if not dbapi.in_transaction:
        dbapi.execute("BEGIN IMMEDIATE")


def hold_write_lock(s: Session) -> None:
    """Make sure the session's transaction holds SQLite's write lock before reading what a write
    depends on (in a safe request it may not yet); PostgreSQL callers lock what they need."""
    if s.bind.dialect.name == "sqlite" and not _reading.get():
        _begin_sqlite_write(s.connection())


def _track_connection(factory: sessionmaker) -> None:
    @event.listens_for(factory, "after_begin")
    def _bound(s, transaction, connection):
        s.info[_CONNECTION] = connection

    @event.listens_for(factory, "after_transaction_end")
    def _unbound(s, transaction):
        if transaction.parent is None:
            s.info.pop(_CONNECTION, None)


def init_app(app: Flask, url: str) -> None:
    engine = make_engine(url)
    app.extensions["inkless.db"] = factory = sessionmaker(engine, expire_on_commit=False)
    _track_connection(factory)
    app.extensions["inkless.engine"] = engine
    app.before_request(_mark_safe_request)

    @app.teardown_appcontext
    def _close(exc):
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            elif session.in_transaction() and not has_written(session):
                # A transaction that only read ends by COMMIT: on PostgreSQL a ROLLBACK makes
                # psycopg forget every statement it has prepared on the connection (and send
                # DEALLOCATE ALL), so each request would parse and plan its statements afresh.
                session.commit()
            session.close()


def session() -> Session:
    """The current request's session."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["inkless.db"]()
    return g.db_session


def in_session(s: Session, model, ident):
    """The `model` row with primary key `ident` if this session already holds it, else None (no query)."""
    return s.identity_map.get(identity_key(model, ident))


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    s = session()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise


def has_written(s: Session) -> bool:
    """Whether the session's transaction holds changes: written statements or pending objects."""
    if s.new or s.dirty or s.deleted:
        return True
    connection = s.info.get(_CONNECTION)
    return connection is not None and bool(connection.info.get(_WROTE))


def end_reads(s: Session) -> bool:
    """End the session's transaction if all it did was read, so nothing it took (SQLite's write
    lock at BEGIN IMMEDIATE, PostgreSQL row locks) is held across what comes next; False, with the
    transaction left as it is, when it has written (its work must commit or roll back as one)."""
    if has_written(s):
        return False
    if s.in_transaction() and not _reads_hold_nothing(s):
        s.commit()
    return True


def _reads_hold_nothing(s: Session) -> bool:
    """A PostgreSQL transaction that only read, without FOR UPDATE or an advisory lock, holds no lock
    a writer waits on (only DDL waits for a reader's table locks, and READ COMMITTED keeps no
    snapshot between statements): it is left open, so the request's next statements need no new
    connection, liveness ping, BEGIN or COMMIT — about a third of a completion's round trips."""
    connection = s.info.get(_CONNECTION)
    return (s.bind.dialect.name == "postgresql" and connection is not None
            and not connection.info.get(_WROTE) and not connection.info.get(_LOCKED))


# An execution option: the statement's answer (errors included) may come later, at the next statement
# that waits, inside `pipelined`. For writes whose result nothing reads, not even a row count.
ANSWER_LATER = "inkless_answer_later"
_PIPELINE = "inkless.pipeline"


@contextmanager
def pipelined(s: Session) -> Iterator[Session]:
    """On PostgreSQL, statements marked ANSWER_LATER go to the server without waiting for their
    answers (psycopg's pipeline mode), which all come back in one round trip at the block's end.
    Any other statement in the block waits for its own answer and those before it, as outside
    the block, so a read, a RETURNING or the ORM's row-count check sees what it expects. A marked
    statement's error is raised at the next statement that waits (SQLAlchemy names that one) or
    at the block's end; the transaction fails as a whole either way. SQLite runs statements in process: the block
    changes nothing there."""
    connection = s.info.get(_CONNECTION)
    if s.bind.dialect.name != "postgresql" or connection is None:
        yield s
        return
    dbapi = connection.connection.dbapi_connection
    begin = dbapi.autocommit and dbapi.pgconn.transaction_status == _PG_IDLE
    try:
        with dbapi.pipeline() as pipeline:
            connection.info[_PIPELINE] = pipeline
            if begin:  # sent with the block's first statement; inside, a write cannot tell it must
                dbapi.execute("BEGIN")
            try:
                yield s
            finally:
                connection.info.pop(_PIPELINE, None)
    except psycopg.Error as e:  # raised by the last wait, outside SQLAlchemy: wrapped as it would
        raise DBAPIError.instance(None, None, e, psycopg.Error) from e


def draw(s: Session, statement) -> int:
    """Run a counter's one statement (it writes and returns the value drawn) in a transaction of
    its own, so the draw commits at once, even during a read phase; when the session's own
    transaction holds SQLite's write lock already, in that transaction (another would wait on it)."""
    if not _reading.get() and s.info.get(_CONNECTION) is not None:
        return s.execute(statement).scalar_one()
    token = _reading.set(False)
    try:
        with s.bind.engine.connect() as conn, conn.begin():
            return conn.execute(statement).scalar_one()
    finally:
        _reading.reset(token)


@contextmanager
def reading(s: Session) -> Iterator[Session]:
    """Reads that hold no lock once done: without BEGIN on SQLite, no FOR UPDATE anywhere, ended
    on the way out. Inside a transaction that holds a connection already (a service task opened
    it, or the caller wrote) or with changes waiting to be flushed, the reads simply join it."""
    if s.info.get(_CONNECTION) is not None or has_written(s):
        yield s
        return
    token = _reading.set(True)
    try:
        with s.no_autoflush:
            yield s
    except BaseException:
        _reading.reset(token)
        s.rollback()
        raise
    _reading.reset(token)
    if not _reads_hold_nothing(s):
        s.commit()


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
