"""Scripts inside diagrams run in a restricted environment; a failing step becomes an incident and
the platform keeps serving (DEVELOPERS.md security defaults, R-SEC-2)."""
from __future__ import annotations

import io
import time

import pytest

from tests.service.diagrams import script_process


def _deploy_and_reach_script(login, key: str, script: str):
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(script_process(key, script)),
                                                                          f"{key}.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": key}).get_json()
    task = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    started = time.monotonic()
    r = clerk.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"value": 1}})
    return r, time.monotonic() - started, clerk, instance["id"]


@pytest.mark.parametrize("script, words", [
    ('cls = getattr((), "__cl" + "ass__")', "getattr"),
    ('s = "{0.__class__}".format(1)', "format"),
    ("x = 1 / 0", "division"),
    ("y = undefined_name + 1", "undefined_name"),
])
def test_failing_script_becomes_an_incident_and_keeps_the_completed_step(login, script, words):
    r, _elapsed, clerk, instance_id = _deploy_and_reach_script(login, "failing", script)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["state"] == "error"
    incident = body["incidents"][0]
    assert incident["element"] == "run_script"
    assert words in incident["message"]
    # The user's step is kept; the failed script is the active element.
    assert "prepare" in body["completed_elements"]
    assert body["active_elements"] == ["run_script"]
    again = clerk.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert again["state"] == "error" and again["incidents"]


def test_endless_loop_is_stopped_by_the_time_limit_and_platform_keeps_serving(login):
    r, elapsed, clerk, _ = _deploy_and_reach_script(login, "endless", "n = 0\nwhile True:\n    n = n + 1")
    assert r.status_code == 200
    body = r.get_json()
    assert body["state"] == "error"
    assert body["incidents"][0]["kind"] == "timeout"
    assert elapsed < 5
    # The platform still answers other requests.
    assert clerk.get("/api/v1/tasks").status_code == 200
    assert clerk.post("/api/v1/process-instances", json={"process_key": "account_application"}).status_code == 201


def test_admin_retries_a_failed_step_after_fixing_its_data(login):
    """An administrator retries the incident with corrected data and a reason; the instance finishes."""
    r, _elapsed, clerk, instance_id = _deploy_and_reach_script(login, "divide", "ratio = 10 / divisor")
    assert r.get_json()["state"] == "error"
    assert clerk.post(f"/api/v1/process-instances/{instance_id}/retry", json={"reason": "x"}).status_code == 403
    admin = login("sysadmin")
    assert admin.post(f"/api/v1/process-instances/{instance_id}/retry", json={}).status_code == 422
    r = admin.post(f"/api/v1/process-instances/{instance_id}/retry",
                   json={"reason": "补充除数", "data": {"divisor": 4}})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "completed"
    assert r.get_json()["incidents"] == []


def test_department_admin_reassigns_a_task_in_their_department(login):
    """R-ACC-3: the office's administrator may reassign the office's tasks, another department's may not."""
    api = login("office_admin")
    instance = api.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    task = api.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    body = {"username": "clerk", "reason": "代为填写"}
    assert login("fin_admin").post(f"/api/v1/tasks/{task['id']}/reassign", json=body).status_code == 404
    r = api.post(f"/api/v1/tasks/{task['id']}/reassign", json=body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["assignee"] == "clerk"
    clerk_tasks = login("clerk").get("/api/v1/tasks").get_json()["items"]
    assert [t["id"] for t in clerk_tasks] == [task["id"]]
    assert login("office_admin").get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["total"] == 0
