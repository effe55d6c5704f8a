"""Cancelling instances (issue 4) and the optional e-mail for notifications."""
from __future__ import annotations

import asyncio
import socket
import threading

from tests.service.test_account_application import APPLICATION


def _start_filled(login):
    api = login("office_admin")
    instance = api.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    task = api.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    assert api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": APPLICATION}).status_code == 200
    return api, instance["id"]


def test_initiator_cancels_before_any_decision_and_history_is_kept(login):
    """R-WF-3: a cancelled instance keeps its history; its open tasks disappear from every inbox."""
    api, instance_id = _start_filled(login)
    r = api.post(f"/api/v1/process-instances/{instance_id}/cancel", json={"reason": "录入错误"})
    assert r.status_code == 200, r.get_json()
    body = api.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert body["state"] == "cancelled" and body["ended_at"]
    assert [h["element_id"] for h in body["history"] if h["user"]] == ["fill_application"]
    assert login("office_head").get("/api/v1/tasks").get_json()["total"] == 0
    assert api.post(f"/api/v1/process-instances/{instance_id}/cancel", json={"reason": "again"}).status_code == 409


def test_initiator_cannot_cancel_after_a_decision_but_an_admin_can_with_a_reason(login):
    api, instance_id = _start_filled(login)
    head = login("office_head")
    task = head.get("/api/v1/tasks").get_json()["items"][0]
    head.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
    assert api.post(f"/api/v1/process-instances/{instance_id}/cancel", json={"reason": "x"}).status_code == 403
    admin = login("sysadmin")
    r = admin.post(f"/api/v1/process-instances/{instance_id}/cancel", json={})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "reason"
    r = admin.post(f"/api/v1/process-instances/{instance_id}/cancel", json={"reason": "申请人离职"})
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"


class _SmtpSink:
    """A local SMTP server that keeps what it receives (the debugging server the issue asks for)."""

    def __init__(self):
        self.messages: list[bytes] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    async def _handle(self, reader, writer):
        writer.write(b"220 sink\r\n")
        data = b""
        while True:
            line = await reader.readline()
            if not line:
                break
            upper = line.upper()
            if upper.startswith(b"DATA"):
                writer.write(b"354 go\r\n")
                body = b""
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.messages.append(body)
                writer.write(b"250 ok\r\n")
            elif upper.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
            data += line
        writer.close()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_new_task_is_mailed_when_smtp_is_configured(app, login):
    """The in-app inbox always works; with INKLESS_SMTP_HOST set, people with an e-mail address also get a mail."""
    from service.models import User

    sink = _SmtpSink()
    try:
        cfg = app.config["INKLESS"]
        cfg.smtp_host, cfg.smtp_port = "127.0.0.1", sink.port
        with app.app_context():
            s = app.extensions["inkless.db"]()
            head = s.query(User).filter_by(username="office_head").one()
            head.email = "head@example.org"
            s.commit()
            s.close()
        _start_filled(login)
        assert sink.messages, "no mail reached the SMTP server"
        assert b"head@example.org" in sink.messages[0]
        notes = login("office_head").get("/api/v1/notifications").get_json()
        assert notes["unread"] == 1 and notes["items"][0]["kind"] == "task"
    finally:
        sink.stop()
