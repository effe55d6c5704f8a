"""`inkless serve` is gunicorn (issue 16, R-OPS-1): persistent connections, an access log in the
combined format, a graceful reload on HUP, ProxyFix only when the setting says so, and the scheduler
in exactly one place."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from service.cli import main
from service.models import ScheduledJob
from tests.conftest import PASSWORD
from tests.service.test_durability import Server

COMBINED = re.compile(r'^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
                      r'"GET /healthz HTTP/1\.1" 200 \d+ "-" "[^"]*" \d+$', re.M)


class Gunicorn(Server):
    """`inkless serve` with options, its access log in a file, stopped with TERM."""

    def __init__(self, app, tmp_path: Path, *args: str, **env: str):
        super().__init__(app)
        self.args = list(args)
        self.env.update(env)
        self.log = tmp_path / f"access-{self.port}.log"

    def start(self):
        self.env.update(INKLESS_ACCESS_LOG=str(self.log))
        from engine import clock

        self.env.update(INKLESS_CLOCK_START=clock.now().isoformat())
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
                                      *self.args], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def get(self, path: str, headers: dict | None = None, connection=None):
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()

    def web_processes(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def wait_for_web_processes(self, count: int) -> set[int]:
        """The master forks its web processes one after another, and the first may answer before
        the last is forked: wait (bounded) until `count` exist."""
        deadline = time.monotonic() + 30
        while len(found := self.web_processes()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, errors = self.proc.communicate(timeout=40)
        return errors


@pytest.fixture
def servers():
    started: list[Gunicorn] = []
    yield started
    for server in started:
        if server.proc and server.proc.poll() is None:
            server.kill()


def _sign_in(server: Gunicorn, username: str, forwarded_for: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/api/v1/auth/token", body=json.dumps({"username": username, "password": PASSWORD}),
                 headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for})
    return json.loads(conn.getresponse().read())["access_token"]


def _client_addr(server: Gunicorn, token: str) -> str:
    _, body = server.get("/api/v1/auth/tokens", {"Authorization": f"Bearer {token}"})
    return json.loads(body)["items"][0]["client_addr"]


def test_serve_is_gunicorn_keeping_connections_and_logging_requests_in_combined_format(app, org, tmp_path,
                                                                                       servers):
    """R-OPS-1: one connection carries several requests; each is one combined-format log line."""
    server = Gunicorn(app, tmp_path)
    servers.append(server)
    server.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    first, _ = server.get("/healthz", connection=conn)
    second, body = server.get("/healthz", connection=conn)
    assert first.getheader("Server").startswith("gunicorn")
    assert second.status == 200 and json.loads(body)["status"] == "ok"
    assert first.getheader("Connection", "keep-alive").lower() != "close"
    conn.close()
    server.stop()
    assert len(COMBINED.findall(server.log.read_text())) >= 2


def test_hup_replaces_the_web_process_and_serving_goes_on(app, org, tmp_path, servers):
    """R-OPS-1: HUP starts a fresh web process (new code and settings) under the same master."""
    server = Gunicorn(app, tmp_path)
    servers.append(server)
    server.start()
    before = server.web_processes()
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = server.web_processes()
        if now and not now & before:
            break
        assert server.get("/healthz")[0].status == 200
        time.sleep(0.1)
    else:
        raise AssertionError("the web process was not replaced")
    assert server.get("/healthz")[0].status == 200
    assert server.proc.poll() is None


def test_forwarded_addresses_are_believed_only_behind_a_declared_proxy(app, org, tmp_path, servers):
    """R-SEC-2: the client address (lockout, rate limit, sessions) comes from X-Forwarded-For only
    when INKLESS_PROXY_HOPS says a proxy is in front."""
    direct = Gunicorn(app, tmp_path)
    proxied = Gunicorn(app, tmp_path, INKLESS_PROXY_HOPS="1")
    servers.extend([direct, proxied])
    direct.start()
    proxied.start()
    assert _client_addr(direct, _sign_in(direct, "clerk", "203.0.113.7")) == "127.0.0.1"
    assert _client_addr(proxied, _sign_in(proxied, "fin_head", "203.0.113.7")) == "203.0.113.7"


def _snapshot_job(app) -> ScheduledJob | None:
    s = app.extensions["inkless.db"]()
    try:
        return s.scalar(select(ScheduledJob).where(ScheduledJob.kind == "snapshots"))
    finally:
        s.close()


def test_one_web_process_fires_timers_and_several_leave_them_to_workers(app, org, tmp_path, servers):
    """R-WF-2: the scheduler runs in the single web process by default; with two web processes none
    of them runs one (no scheduler per web process), and asking for one there is refused."""
    several = Gunicorn(app, tmp_path, "--workers", "2")
    servers.append(several)
    several.start()
    assert len(several.wait_for_web_processes(2)) == 2
    time.sleep(1.5)
    assert _snapshot_job(app) is None
    assert "inkless worker" in several.stop()

    single = Gunicorn(app, tmp_path)
    servers.append(single)
    single.start()
    deadline = time.monotonic() + 20
    # Created due at once when the scheduler starts; firing moves it to the next refresh.
    while time.monotonic() < deadline and not ((job := _snapshot_job(app)) and job.due_at > job.created_at):
        time.sleep(0.2)
    assert job is not None and job.due_at > job.created_at

    refused = CliRunner().invoke(main, ["serve", "--workers", "2", "--scheduler", "embedded"],
                                 env={"INKLESS_NO_SCHEDULER": ""})
    assert refused.exit_code == 2 and "inkless worker" in refused.output


def test_gunicorn_is_not_imported_by_the_other_commands():
    """`inkless worker` and `init` start without loading the web server."""
    code = "import service.cli, sys; print('gunicorn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), check=True).stdout
    assert out.strip() == "False"
