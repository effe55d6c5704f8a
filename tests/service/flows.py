"""Steps every procedure test takes through the API: find the one open task, complete it."""
from __future__ import annotations


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
