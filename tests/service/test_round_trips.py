"""PostgreSQL round trips (issue 16, R-WF-2): reads run outside a transaction, and a unit's write
phase sends the writes whose answers nothing reads in one pipeline (service/db.py).

Counted from libpq's own trace of the app's connections: each Sync (the end of an extended-protocol
exchange) or simple Query is one wait for the server. A Sync after a lone Parse is psycopg
preparing a statement it has run five times, once per connection, and is not counted.
"""
from __future__ import annotations

import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from engine import clock
from service import db
from service.instances import _INSERT_TASKS
from service.models import OpenTask
from tests.conftest import USE_PG
from tests.service.flows import complete, deploy_loop, only_task

pytestmark = pytest.mark.skipif(not USE_PG, reason="PostgreSQL's round trips")

_SENT = re.compile(r"\tF\t\d+\t(\w+)\s*(.*)")


@contextmanager
def traced(app):
    """The messages the app's connections send to the server while the block runs."""
    engine = app.extensions["inkless.engine"]
    engine.dispose()  # new connections, each traced from its start
    with tempfile.NamedTemporaryFile("w+") as trace:
        def _trace(dbapi, _record):
            dbapi.pgconn.trace(trace.fileno())

        event.listen(engine, "connect", _trace)
        sent: list[tuple[str, str]] = []
        try:
            yield sent
        finally:
            event.remove(engine, "connect", _trace)
            engine.dispose()
            trace.flush()
            sent += [m.groups() for m in map(_SENT.search, Path(trace.name).read_text().splitlines()) if m]


def round_trips(sent: list[tuple[str, str]]) -> int:
    waits, previous = 0, None
    for kind, _text in sent:
        if kind == "Query" or (kind == "Sync" and previous != "Parse"):
            waits += 1
        previous = kind
    return waits


def _begins(sent) -> list[str]:
    return [text for kind, text in sent if kind in ("Query", "Parse") and re.search(r"\bBEGIN\b", text)]


def test_a_task_list_is_one_round_trip_without_begin_and_a_completion_five(app, login):
    """A GET of the tasks of an instance reads in one round trip, with no BEGIN or COMMIT; a
    completion (return=minimal) takes five: its read, BEGIN with the version-checked UPDATE, the
    history and open-task writes together, the audit append, COMMIT. It took four and eleven."""
    deploy_loop(login)
    clerk = login("clerk")
    instance_id = clerk.post("/api/v1/process-instances", json={"process_key": "bench_loop"}).get_json()["id"]
    for _ in range(3):  # warm: the caller is remembered, the process loaded
        complete(clerk, only_task(clerk, instance_id=instance_id), {"done": False})
    with traced(app) as listed:
        assert only_task(clerk, instance_id=instance_id)
    assert round_trips(listed) == 1, listed
    assert not _begins(listed) and ("Query", '"COMMIT"') not in listed, listed

    task = only_task(clerk, instance_id=instance_id)
    with traced(app) as completed:
        r = clerk.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"done": False}},
                       headers={"Prefer": "return=minimal"})
        assert r.status_code == 200, r.get_json()
    assert round_trips(completed) == 5, completed
    assert len(_begins(completed)) == 1, completed
    assert only_task(clerk, instance_id=instance_id)["id"] != task["id"]  # the step happened


def _orphan_task() -> dict:
    row = {c.key: None for c in OpenTask.__table__.columns}
    return dict(row, id="no-such-instance-task", instance_id=987654321, process_key="x", element_id="x",
                name="x", approval=False, created_at=clock.now(), data={})


def test_an_error_answered_later_fails_the_transaction_as_sqlalchemys_error(app, org):
    """A write marked ANSWER_LATER that breaks a constraint raises IntegrityError at the block's end
    (or at the next statement that waits), as it would have at once; nothing it did stays."""
    with app.app_context():
        s = db.session()
        s.execute(select(1))
        with pytest.raises(IntegrityError):
            with db.pipelined(s):
                s.execute(_INSERT_TASKS, [_orphan_task()])  # no such instance: a foreign key fails
        s.rollback()
        with pytest.raises(IntegrityError):
            with db.pipelined(s):
                s.execute(_INSERT_TASKS, [_orphan_task()])
                s.execute(select(OpenTask.id).limit(1)).all()  # waits: the insert's error is raised here
        s.rollback()
        assert s.scalar(select(OpenTask.id).where(OpenTask.id == "no-such-instance-task")) is None
        s.close()
