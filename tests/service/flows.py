"""Steps every procedure test takes through the API: find the one open task, complete it; and the
SQL statements a step sends."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event


@contextmanager
def statements(app):
    """The SQL statements the app's engine executes inside the block, in order."""
    seen: list[str] = []

    def _record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = app.extensions["inkless.engine"]
    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def only_task(api, **params) -> dict:
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    items = r.get_json()["items"]
    assert len(items) == 1, items
    return items[0]


def complete(api, task, data, status=200) -> dict:
    r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})
    assert r.status_code == status, r.get_json()
    return r.get_json()
