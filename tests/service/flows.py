"""Steps every procedure test takes through the API: find the one open task, complete it; and the
SQL statements a step sends."""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event

LOOP = Path(__file__).resolve().parents[2] / "bench" / "loop.bpmn"  # work, tick, again: forever


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


def deploy_loop(login) -> None:
    """The bench's loop process (bench/loop.bpmn), deployed by the system administrator."""
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions",
                          data={"files": [(io.BytesIO(LOOP.read_bytes()), "loop.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
