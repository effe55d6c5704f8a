"""Failures named (issue 15, R-OPS-3 fault handling, R-SEC-2 no secrets in logs): the database
away, the storage full or read-only answer 503 with a message saying so in the user's language,
on every API route and on pages; /healthz checks the database and the data directory; the platform
works again as soon as its footing does, without a restart.

How each failure is made: PostgreSQL through a TCP proxy the test cuts (the real server keeps
running); SQLite by putting a directory where its file was; a full disk on a real 4 MB tmpfs; a
read-only data directory on a real read-only bind mount (the tests run as root, whom chmod does
not stop; both need CAP_SYS_ADMIN and are skipped without it); and, everywhere, the driver's own
exceptions (sqlite3's "database or disk is full" / "attempt to write a readonly database",
psycopg's DiskFull / ReadOnlySqlTransaction) raised from the DB-API execute.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from service import create_app
from service.config import Config
from tests.conftest import PASSWORD, USE_PG, ApiClient
from tests.service import outage_helpers
from tests.service.documents_helpers import upload
from tests.service.test_access_matrix import MATRIX, PUBLIC, _api_routes
from tests.service.test_pages import Browser

ZH = {
    "database_unavailable": "无法连接或打开数据库，平台暂时无法使用。请几分钟后再试；如果一直如此，请告知系统管理员。",
    "storage_full": "服务器存储空间已满，无法保存更改。请告知系统管理员。",
    "storage_read_only": "服务器存储为只读或不可写，无法保存更改。请告知系统管理员。",
}
EN_DATABASE = ("The database cannot be reached or opened, so the platform cannot work for now. "
               "Try again in a few minutes; if this lasts, tell the system administrator.")

needs_mount = pytest.mark.skipif(not outage_helpers.can_mount(), reason="needs root with CAP_SYS_ADMIN to mount")


class Footing:
    """The app under test and a switch for its database: cut() takes it away, restore() gives it back."""

    def __init__(self, app, cut, restore):
        self.app, self.cut, self.restore = app, cut, restore

    def token(self, username: str) -> str:
        r = self.app.test_client().post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.get_json()
        return r.get_json()["access_token"]


@pytest.fixture
def footing(app, org):
    if USE_PG:
        # Its own app on the same schema, reaching PostgreSQL through the proxy.
        url = make_url(app.config["INKLESS"].database_url)
        proxy = outage_helpers.CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        through = create_app(dataclasses.replace(app.config["INKLESS"], database_url=proxied))
        yield Footing(through, proxy.cut, proxy.restore)
        proxy.close()
        through.extensions["inkless.engine"].dispose()
        return
    path = Path(app.extensions["inkless.engine"].url.database)
    away = path.with_suffix(".away")

    def cut():
        # Connections already open would go on reading the moved file; a fresh open finds a directory.
        app.extensions["inkless.engine"].dispose()
        path.rename(away)
        path.mkdir()

    def restore():
        path.rmdir()
        away.rename(path)

    yield Footing(app, cut, restore)
    if away.exists():
        restore()


def _filled(rule: str) -> str:
    return re.sub(r"\{\w+\}", "1", rule)


def _outage_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in ("inkless.outage", "inkless.health")]


def test_with_the_database_away_every_api_route_answers_503_saying_so_then_works_again(footing, caplog):
    """R-OPS-3: with PostgreSQL gone (or the SQLite file unopenable) each of the API's routes answers
    503 `database_unavailable` with the message in Chinese (English on request), /healthz says the
    database failed, and everything answers again once the database is back; R-SEC-2: the log lines
    hold neither SQL nor tokens."""
    token = footing.token("office_admin")
    api = ApiClient(footing.app.test_client(), token)
    assert api.get("/api/v1/tasks").status_code == 200
    assert footing.app.test_client().get("/healthz").get_json()["status"] == "ok"

    footing.cut()
    caplog.set_level(logging.WARNING)

    def call_every_route() -> dict:
        answers = {}
        for (method, rule), (body, _expected) in MATRIX.items():
            if not rule.startswith("/api/"):
                continue  # the matrix also lists pages; they answer 503 as a page (test below)
            r = api.client.open(_filled(rule), method=method, json=body, headers=api._headers())
            answers[(method, rule)] = (r.status_code, (r.get_json(silent=True) or {}).get("code"))
        return answers

    # The caller may still be remembered (service/identity_cache.py): a route may then answer what
    # needs no database (the policy table, bad input, a forbidden call), but none fails otherwise.
    remembered = call_every_route()
    wrong = {route: got for route, got in remembered.items()
             if got != (503, "database_unavailable") and got[0] >= 500}
    assert not wrong, wrong
    # A caller not remembered (any caller, once the database is down a while) gets 503 everywhere.
    footing.app.extensions["inkless.callers"].forget()
    answers = call_every_route()
    wrong = {route: got for route, got in answers.items() if got != (503, "database_unavailable")}
    assert not wrong, wrong
    assert set(answers) | PUBLIC >= _api_routes(footing.app)  # every API route was called

    r = api.get("/api/v1/process-instances")
    assert r.get_json()["message"] == ZH["database_unavailable"]
    assert r.headers["Retry-After"] == "30"
    assert api.get("/api/v1/process-instances?lang=en").get_json()["message"] == EN_DATABASE
    english = api.get("/api/v1/process-instances", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert english.get_json()["message"] == EN_DATABASE

    health = footing.app.test_client().get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["failed"] == ["database"]
    assert health.get_json()["checks"]["database"]["message"] == ZH["database_unavailable"]
    assert health.get_json()["checks"]["data_dir"] == {"ok": True}

    lines = _outage_logs(caplog)
    assert lines
    for record in lines:
        said = record.getMessage()
        assert "\n" not in said and record.exc_info is None
        assert token not in said and PASSWORD not in said
        assert not re.search(r"\b(SELECT|INSERT INTO|FROM|WHERE|VALUES)\b|\[SQL|\[parameters", said), said

    footing.restore()
    assert api.get("/api/v1/tasks").status_code == 200
    assert footing.app.test_client().get("/healthz").status_code == 200


def test_a_page_says_the_database_is_away_in_the_readers_language(footing):
    """R-OPS-3: a signed-in page and the sign-in form answer a 503 page with the message (Chinese by
    default, English with ?lang=en), never a traceback; the page works again once the database is back."""
    browser = Browser(footing.app)
    browser.sign_in("clerk")
    footing.cut()
    page = browser.get("/")
    assert page.status_code == 503 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert ZH["database_unavailable"] in html and "Traceback" not in html
    assert "Content-Security-Policy" in page.headers
    assert EN_DATABASE in browser.get("/?lang=en").get_data(as_text=True)
    signing_in = Browser(footing.app).client.post("/signin", data={"username": "clerk", "password": PASSWORD})
    assert signing_in.status_code in (403, 503)  # no form token could be had without the database either

    footing.restore()
    assert browser.get("/").status_code == 200


def _raise_on_writes(monkeypatch, engine, error: Exception):
    """The DB-API execute raises `error` (the driver's own exception) for every write."""
    dialect = engine.dialect
    for name in ("do_execute", "do_executemany"):
        real = getattr(dialect, name)

        def fake(cursor, statement, *args, _real=real, **kw):
            if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
                raise error
            return _real(cursor, statement, *args, **kw)

        monkeypatch.setattr(dialect, name, fake)


def _driver_error(code: str) -> Exception:
    if USE_PG:
        import psycopg

        return {"storage_full": psycopg.errors.DiskFull("could not extend file: No space left on device"),
                "storage_read_only": psycopg.errors.ReadOnlySqlTransaction(
                    "cannot execute INSERT in a read-only transaction")}[code]
    return sqlite3.OperationalError({"storage_full": "database or disk is full",
                                     "storage_read_only": "attempt to write a readonly database"}[code])


@pytest.mark.parametrize("code", ["storage_full", "storage_read_only"])
def test_a_full_or_read_only_database_answers_503_saying_so(code, app, org, client, monkeypatch):
    """R-OPS-3: the driver's "disk full" and "read-only" errors on a write are a 503 naming the
    storage problem, for the API (JSON) and for a page; writes work again once the storage does."""
    engine = app.extensions["inkless.engine"]
    with monkeypatch.context() as patch:
        _raise_on_writes(patch, engine, _driver_error(code))
        r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD})
        assert (r.status_code, r.get_json()["code"], r.get_json()["message"]) == (503, code, ZH[code])
        assert "Retry-After" not in r.headers
        browser = Browser(app)
        browser.get("/signin")
        page = browser.post("/signin", {"username": "clerk", "password": PASSWORD})
        assert page.status_code == 503 and ZH[code] in page.get_data(as_text=True)
        # The database still answers reads, and says so.
        assert client.get("/healthz").status_code == 200
    r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD})
    assert r.status_code == 200


@pytest.mark.skipif(USE_PG, reason="SQLite's connections, PostgreSQL's dialect recognises its own")
def test_a_read_only_error_drops_the_pooled_sqlite_connections(app, org, client, monkeypatch):
    """R-OPS-3: a SQLite connection that met "attempt to write a readonly database" (opened while the
    storage was read-only, it would stay so) is not used again: the pool opens fresh connections."""
    engine = app.extensions["inkless.engine"]
    opened = []
    event.listen(engine, "connect", lambda dbapi_conn, _record: opened.append(id(dbapi_conn)))
    assert client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD}).status_code == 200
    before = len(opened)
    with monkeypatch.context() as patch:
        _raise_on_writes(patch, engine, _driver_error("storage_read_only"))
        assert client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD}).status_code == 503
    assert client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD}).status_code == 200
    assert len(opened) > before  # a new connection, not the one that failed


@needs_mount
def test_a_server_started_on_read_only_storage_works_once_it_is_writable(app, org):
    """R-OPS-3: an app started while its data directory (and, on SQLite, its database) sits on a
    read-only mount answers 503 saying so and /healthz names the data directory; once the mount is
    writable again the same app signs people in, no restart."""
    cfg = app.config["INKLESS"]
    app.extensions["inkless.engine"].dispose()
    with outage_helpers.mounted_read_only(cfg.data_dir) as writable:
        started = create_app(Config.from_env(data_dir=cfg.data_dir, database_url=cfg.database_url, secret_key="s",
                                             testing=True, mfa_enforced=False, ratelimit_enabled=False,
                                             argon2_time_cost=1, argon2_memory_cost=8))
        client = started.test_client()
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json()["checks"]["data_dir"]["code"] == "storage_read_only"
        r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD})
        if USE_PG:  # the database is elsewhere and fine; a document's file is not
            assert r.status_code == 200
            r = upload(ApiClient(client, r.get_json()["access_token"]))
        assert r.status_code == 503
        assert r.get_json()["code"] in ("storage_read_only", "database_unavailable")
        assert r.get_json()["message"] in (ZH["storage_read_only"], ZH["database_unavailable"])

        writable()
        assert client.get("/healthz").status_code == 200
        r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD})
        assert r.status_code == 200
        assert upload(ApiClient(client, r.get_json()["access_token"])).status_code == 201
        started.extensions["inkless.engine"].dispose()


@needs_mount
def test_a_full_disk_answers_503_and_work_resumes_once_there_is_room(app, org, tmp_path):
    """R-OPS-3: on a real file system with no byte left, an upload (and on SQLite the sign-in that
    writes a token) answers 503 `storage_full`, /healthz names the data directory; after room is
    made the same app works."""
    cfg = app.config["INKLESS"]
    with outage_helpers.small_filesystem(tmp_path / "small", "6m") as small:
        url = cfg.database_url
        if not USE_PG:
            app.extensions["inkless.engine"].dispose()
            shutil.copy(Path(app.extensions["inkless.engine"].url.database), small / "inkless.db")
            url = f"sqlite:///{small / 'inkless.db'}"
        full = create_app(Config.from_env(data_dir=small, database_url=url, secret_key="s", testing=True,
                                          mfa_enforced=False, ratelimit_enabled=False,
                                          argon2_time_cost=1, argon2_memory_cost=8))
        client = full.test_client()
        token = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD}).get_json()
        api = ApiClient(client, token["access_token"])
        assert upload(api).status_code == 201  # the document keys exist now
        filler = outage_helpers.fill(small)

        r = upload(api, b"x" * 200_000)
        assert (r.status_code, r.get_json()["code"], r.get_json()["message"]) == (503, "storage_full", ZH["storage_full"])
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["checks"]["data_dir"]["code"] == "storage_full"

        filler.unlink()
        assert client.get("/healthz").status_code == 200
        assert upload(api, b"x" * 200_000).status_code == 201
        full.extensions["inkless.engine"].dispose()


@needs_mount
def test_inkless_serve_started_on_a_read_only_directory_recovers_once_writable(app, org):
    """R-OPS-3: the live server (`inkless serve`, a process of its own) started while its data
    directory is on a read-only mount: on PostgreSQL it runs and answers 503 naming the data
    directory; on SQLite (whose WAL database cannot even be opened there) it says so in one line
    and waits; in both it signs people in once the mount is writable, without a restart."""
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from tests.conftest import subprocess_env
    from tests.service.test_durability import _free_port

    cfg = app.config["INKLESS"]
    app.extensions["inkless.engine"].dispose()
    port = _free_port()

    def call(method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    env = subprocess_env(DATABASE_URL=cfg.database_url, INKLESS_DATA_DIR=str(cfg.data_dir), INKLESS_SECRET_KEY="s",
                         INKLESS_MFA_ENFORCED="0", INKLESS_LOGIN_RATE_LIMIT="1000 per minute", INKLESS_DB_WAIT="60")
    with outage_helpers.mounted_read_only(cfg.data_dir) as writable:
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            if not USE_PG:  # the database cannot even be opened: serve says so in one line and waits
                assert "cannot be reached" in server.stderr.readline()
                writable()
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, server.stderr.read()
                try:
                    status, health = call("GET", "/healthz")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the server did not come up"
                    time.sleep(0.2)
            if USE_PG:  # the database is elsewhere: the server runs and names the data directory
                assert status == 503 and health["checks"]["data_dir"]["code"] == "storage_read_only"
            writable()
            assert call("GET", "/healthz")[0] == 200
            status, body = call("POST", "/api/v1/auth/token", {"username": "clerk", "password": PASSWORD})
            assert status == 200 and body["access_token"]
        finally:
            server.terminate()
            server.wait(timeout=20)
    assert os.access(cfg.data_dir, os.W_OK)


def test_the_drivers_words_are_named_and_no_password_shows():
    """R-SEC-2, R-OPS-3: PostgreSQL's SQLSTATEs and the OS's errnos map to the three named failures;
    a password in a connection string never reaches the log line; other errors stay bugs."""
    import errno

    import psycopg

    from service import outage

    assert outage.classify(psycopg.errors.DiskFull("x")).code == "storage_full"
    assert outage.classify(psycopg.errors.ReadOnlySqlTransaction("x")).code == "storage_read_only"
    assert outage.classify(psycopg.errors.AdminShutdown("x")).code == "database_unavailable"
    assert outage.classify(psycopg.OperationalError("connection refused")).code == "database_unavailable"
    assert outage.classify(psycopg.errors.UniqueViolation("x")) is None
    assert outage.classify(OSError(errno.ENOSPC, "No space left on device")).code == "storage_full"
    assert outage.classify(OSError(errno.EROFS, "Read-only file system")).code == "storage_read_only"
    assert outage.classify(OSError(errno.ENOENT, "No such file")) is None
    assert outage.classify(sqlite3.OperationalError("database is locked")) is None
    said = outage.reason(psycopg.OperationalError(
        'connection to postgresql://inkless:hunter2@db:5432/x failed: password=hunter2 rejected\nmore'))
    assert "hunter2" not in said and "\n" not in said
