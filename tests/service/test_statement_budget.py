"""Completing a task costs a fixed number of SQL statements, however long the instance's history
(docs/performance.md, "complete a task over HTTP in a few milliseconds, flat as history grows").

Counted, not timed: every statement the app's engine executes while the POST /complete request
runs (authentication, the unit of work, the response), on the bench's loop process.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from service.db import Base
from tests.conftest import USE_PG
from tests.service.flows import complete, deploy_loop, only_task, statements

# Measured with the full answer, and with `Prefer: return=minimal` (no history in the answer):
# 12 and 10 on SQLite (BEGIN IMMEDIATE included), 10 and 8 on PostgreSQL (no BEGIN statement; the
# open tasks' DELETE and their notifications' UPDATE are one statement; the audit append's lock,
# head and insert are one call). 30 and 28 at first; 15-16 until issue 16 read the task, its
# instance and the instance's open tasks in one statement; 14 and 12 until the caller of a token
# was remembered between requests (service/identity_cache.py); 13 and 11 until an audit append
# linked to the head its process wrote last (service/audit.py; docs/performance.md).
BUDGETS = {"sqlite": (12, 10), "postgresql": (10, 8)}

# The session must stay consistent with what the statements did (no stale rows in its identity map).
pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


def _round(api, instance_id: int, done: bool = False) -> dict:
    return complete(api, only_task(api, instance_id=instance_id), {"done": done})


def _statements_for_one_completion(app, api, instance_id: int, minimal: bool = False) -> list[str]:
    task = only_task(api, instance_id=instance_id)
    headers = {"Prefer": "return=minimal"} if minimal else {}
    with statements(app) as seen:
        r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"done": False}}, headers=headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["state"] == "running" and body["active_elements"] == ["work"]
    return seen


def test_completing_a_task_issues_the_same_statements_at_10_and_100_steps(app, login):
    """R-WF-2 (issue 16): the statement count of a completion is flat in the history and within budget."""
    deploy_loop(login)
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "bench_loop"}).get_json()

    while True:
        body = _round(clerk, instance["id"])
        if body["history_total"] >= 10:
            break
    young = _statements_for_one_completion(app, clerk, instance["id"])
    while True:
        body = _round(clerk, instance["id"])
        if body["history_total"] >= 100:
            break
    old = _statements_for_one_completion(app, clerk, instance["id"])

    budget, minimal_budget = BUDGETS[app.extensions["inkless.engine"].dialect.name]
    assert len(young) == len(old), "\n".join(old)
    assert len(old) <= budget, "\n".join(old)
    minimal = _statements_for_one_completion(app, clerk, instance["id"], minimal=True)
    assert len(minimal) <= minimal_budget, "\n".join(minimal)
    assert _round(clerk, instance["id"], done=True)["state"] == "completed"


def test_prefer_return_minimal_spares_the_answer_its_history(app, login):
    """R-WF-2 (issue 16): `Prefer: return=minimal` answers the new state without the history, in two
    statements fewer; without the header the answer is whole."""
    deploy_loop(login)
    clerk = login("clerk")
    r = clerk.client.post("/api/v1/process-instances", json={"process_key": "bench_loop"},
                          headers={**clerk._headers(), "Prefer": "return=minimal"})
    assert r.status_code == 201 and r.headers["Preference-Applied"] == "return=minimal"
    instance = r.get_json()
    assert instance["active_elements"] == ["work"] and "history" not in instance
    for _ in range(3):
        _round(clerk, instance["id"])
    whole = _statements_for_one_completion(app, clerk, instance["id"])
    task = only_task(clerk, instance_id=instance["id"])
    with statements(app) as minimal:
        r = clerk.client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"done": False}},
                              headers={**clerk._headers(), "Prefer": "return=minimal"})
    body = r.get_json()
    assert r.status_code == 200 and r.headers["Preference-Applied"] == "return=minimal"
    assert body["active_elements"] == ["work"] and not {"history", "completed_elements"} & set(body)
    assert len(minimal) == len(whole) - 2, "\n".join(minimal)
    assert "history" in _round(clerk, instance["id"])


@pytest.mark.skipif(USE_PG, reason="SQLite's query plan names every full read of a table; PostgreSQL "
                                   "reads tables this small in full on purpose")
def test_every_statement_of_a_start_a_list_and_a_completion_finds_its_rows_through_an_index(app, login):
    """R-WF-2 (issue 16): none of them reads a whole table, so none costs more the longer the
    platform has run (a completion once scanned every notification ever sent to mark its task's
    read). The one full read allowed is the last row by id (the audit chain's head), which stops
    at the first row."""
    deploy_loop(login)
    clerk = login("clerk")
    seen: list[tuple[str, object]] = []

    def _record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters[0] if executemany else parameters))

    engine = app.extensions["inkless.engine"]
    event.listen(engine, "before_cursor_execute", _record)
    try:
        instance = clerk.post("/api/v1/process-instances", json={"process_key": "bench_loop"}).get_json()
        for _ in range(3):
            _round(clerk, instance["id"])
    finally:
        event.remove(engine, "before_cursor_execute", _record)

    tables, full_reads = set(Base.metadata.tables), set()
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
                continue
            text = " ".join(statement.split())
            for *_ids, detail in cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters or ()):
                table = detail.split()[1] if detail.startswith("SCAN ") else None  # not a subquery's rows
                if table in tables and not re.search(rf"ORDER BY {table}\.id DESC LIMIT", text):
                    full_reads.add(f"{detail}: {text[:200]}")
    assert "UPDATE notifications" in " ".join(s for s, _ in seen)  # the statement the index is for ran
    assert not full_reads, "\n".join(sorted(full_reads))
