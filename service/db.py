"""The database: one SQLAlchemy engine per app, one session per request (or per CLI command)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

from flask import Flask, current_app, g
from sqlalchemy import DateTime, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.util import identity_key


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
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def init_app(app: Flask, url: str) -> None:
    engine = make_engine(url)
    app.extensions["inkless.db"] = sessionmaker(engine, expire_on_commit=False)
    app.extensions["inkless.engine"] = engine

    @app.teardown_appcontext
    def _close(exc):
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
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
