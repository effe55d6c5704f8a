"""On SQLite a GET takes no write lock unless it writes (issue 16): reading never waits for a writer,
and a GET that does write (the audit row of a record read) still chains its row under the lock.
"""
from __future__ import annotations

import sqlite3

import pytest

from tests.service.flows import statements


def _start(api) -> dict:
    r = api.post("/api/v1/process-instances", json={"process_key": "account_application"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.fixture
def sqlite_file(app):
    engine = app.extensions["inkless.engine"]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    return engine.url.database


def test_a_task_list_issues_no_begin_immediate(app, login, sqlite_file):
    """R-WF-2: listing my tasks is a read: no statement of it takes the write lock."""
    clerk = login("clerk")
    with statements(app) as seen:
        r = clerk.get("/api/v1/tasks")
    assert r.status_code == 200, r.get_json()
    assert seen and not any("BEGIN" in s.upper() for s in seen), seen


def test_reads_answer_while_another_process_holds_the_write_lock(app, login, sqlite_file):
    """R-WF-2: a writer elsewhere (another web process, a worker) does not hold up readers."""
    clerk = login("clerk")
    _start(clerk)
    writer = sqlite3.connect(sqlite_file, timeout=0, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        r = clerk.get("/api/v1/tasks")
        assert r.status_code == 200 and r.get_json()["total"] == 1
        assert clerk.get("/api/v1/process-definitions").status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_get_that_writes_its_read_audit_row_keeps_the_chain(app, login, sqlite_file):
    """R-SEC-10: the read audit row a GET writes takes the write lock before it reads the chain's
    last hash, so the log still verifies."""
    from service import audit_chain, audit_log
    from service.models import AuditEvent

    clerk = login("clerk")
    started = _start(clerk)
    for _ in range(3):
        assert clerk.get(f"/api/v1/process-instances/{started['id']}").status_code == 200
    s = app.extensions["inkless.db"]()
    try:
        reads = s.query(AuditEvent).filter(AuditEvent.action == audit_log.READ_ACTION,
                                           AuditEvent.object_id == str(started["id"])).count()
        assert reads == 3
        with app.app_context():
            assert audit_chain.verify_platform(app, s).ok
    finally:
        s.close()
