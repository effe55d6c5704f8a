"""Delivering messages to waiting instances through POST /api/v1/messages."""
from __future__ import annotations

import io

from tests.service.diagrams import message_process


def _deploy(admin, key, message):
    r = admin.client.post("/api/v1/process-definitions",
                          data={"files": [(io.BytesIO(message_process(key, message)), f"{key}.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()


def test_message_reaches_only_the_instance_with_its_business_key(login):
    admin = login("sysadmin")
    _deploy(admin, "await_payment", "payment_received")
    clerk = login("clerk")
    a = clerk.post("/api/v1/process-instances", json={"process_key": "await_payment", "business_key": "A-1"}).get_json()
    b = clerk.post("/api/v1/process-instances", json={"process_key": "await_payment", "business_key": "B-2"}).get_json()
    assert a["active_elements"] == ["wait"] and b["active_elements"] == ["wait"]

    r = admin.post("/api/v1/messages", json={"name": "payment_received", "business_key": "B-2",
                                             "payload": {"amount": 42}})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["id"] == b["id"]
    assert r.get_json()["active_elements"] == ["record"]
    assert clerk.get(f"/api/v1/process-instances/{a['id']}").get_json()["active_elements"] == ["wait"]
    task = clerk.get("/api/v1/tasks", query_string={"instance_id": b["id"]}).get_json()["items"][0]
    assert task["instructions"] == "收到 42"

    # Nobody else waits for it now.
    again = admin.post("/api/v1/messages", json={"name": "payment_received", "business_key": "B-2"})
    assert again.status_code == 404
    assert again.get_json()["code"] == "not_found"


def test_messages_need_platform_rights(login, anon):
    assert anon.post("/api/v1/messages", json={"name": "x"}).status_code == 401
    assert login("clerk").post("/api/v1/messages", json={"name": "x"}).status_code == 403
    r = login("sysadmin").post("/api/v1/messages", json={"payload": {}})
    assert r.status_code == 422
    assert r.get_json()["details"][0]["field"] == "name"


def test_message_starts_the_process_that_begins_with_it(login):
    """A message nobody waits for starts the process with a matching message start event; a hand
    start of the same process does not also wait for the message."""
    from tests.service.diagrams import two_start_process

    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions",
                          data={"files": [(io.BytesIO(two_start_process("help_desk", "need_help")), "h.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201
    by_hand = login("supervisor").post("/api/v1/process-instances", json={"process_key": "help_desk"}).get_json()
    assert by_hand["active_elements"] == ["handle"]
    r = admin.post("/api/v1/messages", json={"name": "need_help", "payload": {"department": "FIN"}})
    assert r.status_code == 200, r.get_json()
    started = r.get_json()
    assert started["id"] != by_hand["id"] and started["active_elements"] == ["handle"]
    assert "start_msg" in started["completed_elements"]


def test_message_thrown_by_one_process_starts_another(login):
    """The engine never routes between instances; the service does, in the same transaction."""
    from tests.service.diagrams import throwing_process, two_start_process

    admin = login("sysadmin")
    files = [(io.BytesIO(two_start_process("help_desk", "need_help")), "h.bpmn"),
             (io.BytesIO(throwing_process("alarm", "need_help")), "a.bpmn")]
    r = admin.client.post("/api/v1/process-definitions", data={"files": files},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    thrower = admin.post("/api/v1/process-instances", json={"process_key": "alarm", "data": {"department": "FIN"}})
    assert thrower.get_json()["state"] == "completed"
    supervisor = login("supervisor")
    started = supervisor.get("/api/v1/process-instances", query_string={"process_key": "help_desk"}).get_json()
    assert started["total"] == 1
    task = supervisor.get("/api/v1/tasks", query_string={"process_key": "help_desk"}).get_json()["items"][0]
    detail = supervisor.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert detail["data"]["request"] == {"department": "FIN"}
