"""`inkless serve`, `init` and `worker` with the database away (issue 15, R-OPS-3): one line on the
console instead of a traceback, tries again with growing pauses up to INKLESS_DB_WAIT seconds,
`--no-wait` gives up at once; giving up exits with EX_TEMPFAIL (75); a database that comes back
while they wait is used."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from service.startup import EX_TEMPFAIL
from tests.conftest import USE_PG, subprocess_env
from tests.service import outage_helpers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _inkless(args: list[str], tmp_path: Path, url: str, wait: str | None = None, timeout: float = 60):
    env = subprocess_env(DATABASE_URL=url, INKLESS_DATA_DIR=str(tmp_path / "data"), INKLESS_SECRET_KEY="s")
    env.pop("INKLESS_DB_WAIT", None)
    if wait is not None:
        env["INKLESS_DB_WAIT"] = wait
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["init"], ["worker", "--once"]])
def test_an_unreachable_database_is_one_line_then_tries_again_and_gives_up(command, tmp_path):
    """R-OPS-3: with nothing listening on the database's port, the command says so in one line
    (where, why, for how long it tries), tries again for INKLESS_DB_WAIT seconds, then says it gave
    up and exits 75; no traceback, and the password in the URL is not shown."""
    url = f"postgresql://inkless:sekrit@127.0.0.1:{_closed_port()}/inkless"
    started = time.monotonic()
    done = _inkless(command, tmp_path, url, wait="2")
    took = time.monotonic() - started
    assert done.returncode == EX_TEMPFAIL, done.stderr
    lines = _lines(done.stderr)
    assert len(lines) == 2, done.stderr
    assert "cannot be reached" in lines[0] and "Connection refused" in lines[0] and "up to 2 s" in lines[0]
    assert lines[0].startswith("inkless: the database at 127.0.0.1:") and lines[1].startswith("inkless: gave up")
    assert "Traceback" not in done.stderr and "sekrit" not in done.stderr + done.stdout
    assert took >= 2  # it did wait


def test_no_wait_gives_up_at_once_in_one_line(tmp_path):
    """R-OPS-3: `--no-wait` (for scripts that must fail fast): exactly one line, exit 75."""
    done = _inkless(["init", "--no-wait"], tmp_path, f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")
    assert done.returncode == EX_TEMPFAIL
    lines = _lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("inkless: the database at 127.0.0.1:"), done.stderr
    assert "not waiting" in lines[0]


def test_a_database_that_comes_back_while_init_waits_is_used(app, tmp_path):
    """R-OPS-3: `inkless init` started while the database is away waits; when it is back (PostgreSQL:
    the proxy restored; SQLite: the directory that stood where the file should be removed) init
    carries on and finishes, having said one line about the wait and one that it answers again."""
    if USE_PG:
        url = make_url(app.config["INKLESS"].database_url)
        proxy = outage_helpers.CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
        proxy.cut()
        target = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        back = proxy.restore
    else:
        proxy = None
        blocked = tmp_path / "elsewhere" / "inkless.db"
        blocked.mkdir(parents=True)
        target = f"sqlite:///{blocked}"
        back = blocked.rmdir
    env = subprocess_env(DATABASE_URL=target, INKLESS_DATA_DIR=str(tmp_path / "data"), INKLESS_SECRET_KEY="s",
                         INKLESS_DB_WAIT="30")
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "init"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = process.stderr.readline()  # it is waiting now
        back()
        out, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        if proxy:
            proxy.close()
    lines = _lines(first + rest)
    assert process.returncode == 0, first + rest
    assert len(lines) == 2 and "cannot be reached" in lines[0] and "answers; starting" in lines[1], lines
    assert "database ready" in out


def test_the_config_reads_the_wait(tmp_path, monkeypatch):
    """INKLESS_DB_WAIT is configuration (seconds, never negative)."""
    from service.config import Config

    monkeypatch.setenv("INKLESS_DB_WAIT", "7.5")
    assert Config.from_env(data_dir=tmp_path, secret_key="s").database_wait == 7.5
    monkeypatch.setenv("INKLESS_DB_WAIT", "-3")
    assert Config.from_env(data_dir=tmp_path, secret_key="s").database_wait == 0
