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
