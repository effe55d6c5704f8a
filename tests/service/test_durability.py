"""Killing the server between requests loses no completed step (each step commits with its history)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from engine import clock
from tests.conftest import PASSWORD
from tests.service.test_account_application import APPLICATION


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        cfg = app.config["INKLESS"]
        # Like the app fixture: password-only administrators and no sign-in rate limit to speak of
        # (tests/browser/test_mfa.py turns the second factor back on).
        self.env = dict(os.environ, DATABASE_URL=cfg.database_url, INKLESS_DATA_DIR=str(cfg.data_dir),
                        INKLESS_SECRET_KEY="test-secret", INKLESS_MFA_ENFORCED="0",
                        INKLESS_LOGIN_RATE_LIMIT="1000 per minute")
        self.port = _free_port()
        self.proc = None

    def start(self):
        # The server's clock starts where the test's stands (tests/conftest.py subprocess_env).
        self.env.update(INKLESS_CLOCK_START=clock.now().isoformat())
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self):
        # The whole server dies, as in a power cut: killing only gunicorn's master would leave its
        # worker serving /healthz for a moment, and the next start would talk to a dying process.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it died by itself
            pass
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return
        raise RuntimeError("the killed server still answers")

    def call(self, method, path, body=None, token=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


def test_killing_the_server_between_requests_loses_no_completed_step(app, org):
    server = Server(app)
    server.start()
    try:
        token = server.call("POST", "/api/v1/auth/token", {"username": "office_admin", "password": PASSWORD})["access_token"]
        instance = server.call("POST", "/api/v1/process-instances", {"process_key": "account_application"}, token)
        tasks = server.call("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=token)["items"]
        server.call("POST", f"/api/v1/tasks/{tasks[0]['id']}/complete", {"data": APPLICATION}, token)
        server.kill()

        server.start()
        head = server.call("POST", "/api/v1/auth/token", {"username": "office_head", "password": PASSWORD})["access_token"]
        tasks = server.call("GET", f"/api/v1/tasks?instance_id={instance['id']}", token=head)["items"]
        assert [t["element_id"] for t in tasks] == ["dept_head_review"]
        server.call("POST", f"/api/v1/tasks/{tasks[0]['id']}/complete", {"data": {"decision": "approve"}}, head)
        server.kill()

        server.start()
        state = server.call("GET", f"/api/v1/process-instances/{instance['id']}", token=token)
        assert state["active_elements"] == ["platform_review"]  # the task; its deadline timer is not a step
        assert [h["element_id"] for h in state["history"] if h["user"]] == ["fill_application", "dept_head_review"]
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
