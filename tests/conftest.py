"""Test fixtures: a real app on a fresh database per test.

SQLite (default): each test gets a copy of a migrated template database in its own data dir.
PostgreSQL (`DATABASE_URL=postgresql://…`): one schema per test session, migrated once, and
every table truncated before each test.
"""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.orm import close_all_sessions

from service import create_app
from service.config import Config
from service.migrate import upgrade
from service.models import ScheduledJob

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_URL = os.environ.get("DATABASE_URL", "")
USE_PG = PG_URL.startswith(("postgres://", "postgresql"))


def _pg_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    if USE_PG:
        schema = f"inkless_test_{uuid.uuid4().hex[:10]}"
        base = _pg_url(PG_URL)
        admin = create_engine(base)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}options=-csearch_path%3D{schema}"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield {"url": url, "schema": schema}
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "inkless.db"
        engine = create_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()
        yield {"path": path}


def make_config(tmp_path: Path, database_template) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    if USE_PG:
        url = database_template["url"]
        engine = create_engine(url)
        with engine.begin() as c:
            tables = c.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != 'alembic_version'"
            )).scalars().all()
            if tables:
                c.execute(text("SET LOCAL lock_timeout = '30s'"))  # fail loudly rather than hang
                c.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        engine.dispose()
    else:
        shutil.copy(database_template["path"], data_dir / "inkless.db")
        url = f"sqlite:///{data_dir / 'inkless.db'}"
    return Config.from_env(
        data_dir=data_dir, database_url=url, secret_key="test-secret",
        argon2_time_cost=1, argon2_memory_cost=8, testing=True, session_cookie_secure=False,
        script_time_limit=0.5, token_ttl_seconds=400 * 86400,
        # Most tests sign administrators in by password alone and sign in many times from one
        # address; the identity tests (tests/service/test_identity*.py) turn both defences back on.
        mfa_enforced=False, ratelimit_enabled=False,
    )


@pytest.fixture
def app(tmp_path, database_template):
    application = create_app(make_config(tmp_path, database_template))
    from service import definitions, org

    cfg = application.config["INKLESS"]
    with application.test_request_context():
        s = application.extensions["inkless.db"]()
        org.ensure_groups(s)
        definitions.deploy_directory(s, cfg.process_models_dir, cfg.forms_dir)
        # Built-in timer starts (the quarterly assessment) would fire whenever a test moves the
        # clock; tests that want one schedule their own.
        s.execute(delete(ScheduledJob).where(ScheduledJob.kind == "start"))
        s.commit()
        s.close()
    yield application
    # A test that failed half-way may leave a session in a transaction (holding row locks or the
    # audit advisory lock); roll every session back so the next test's TRUNCATE cannot hang.
    close_all_sessions()
    application.extensions["inkless.engine"].dispose()


class ApiClient:
    """Calls the API as one user (or anonymously)."""

    def __init__(self, client, token: str | None = None):
        self.client = client
        self.token = token

    def _headers(self, extra=None):
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def get(self, url, **kw):
        return self.client.get(url, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, url, json=None, **kw):
        return self.client.post(url, json=json, headers=self._headers(kw.pop("headers", None)), **kw)


# The suite never reads the wall clock. Every test runs on the platform clock (engine.clock) started at
# SUITE_MOMENT, or at the moment `--clock` (or INKLESS_TEST_CLOCK) names, ticking at real speed; tests
# that build data at fixed dates ask for `frozen`, which stops the clock at FROZEN_MOMENT whatever
# `--clock` says. `make test-dates` runs the suite at other moments to prove no test depends on one.
SUITE_MOMENT = "2026-12-03T09:30:00+08:00"
FROZEN_MOMENT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 Beijing time


def pytest_addoption(parser):
    parser.addoption("--clock", default=os.environ.get("INKLESS_TEST_CLOCK") or SUITE_MOMENT,
                     help="ISO 8601 moment (with offset) at which the platform clock starts in every test")


def _suite_start(config) -> datetime:
    start = datetime.fromisoformat(config.getoption("--clock"))
    if start.tzinfo is None:
        raise pytest.UsageError("--clock needs a UTC offset, e.g. 2026-12-31T23:59:00+08:00")
    return start


def pytest_report_header(config):
    return f"platform clock starts at {_suite_start(config).isoformat()} (--clock)"


@pytest.fixture(autouse=True)
def platform_clock(request):
    """Installed before any other fixture, so users, instances and audit rows made by fixtures carry
    the test's moment, not the machine's."""
    from engine import clock

    if "frozen" in request.fixturenames:
        provider = clock.FrozenClock(FROZEN_MOMENT)
    else:
        provider = clock.TickingClock(_suite_start(request.config))
    clock.set_provider(provider)
    yield provider
    clock.set_provider(None)


@pytest.fixture
def frozen(platform_clock):
    """The platform's clock, stopped at 2026-12-01 09:00 Beijing time; tests move it explicitly."""
    return platform_clock


def subprocess_env(**extra) -> dict:
    """The environment for a server or worker process a test starts: its clock starts where the
    test's clock stands now and runs on."""
    from engine import clock

    return dict(os.environ, INKLESS_CLOCK_START=clock.now().isoformat(), **extra)


@pytest.fixture
def client(app):
    return app.test_client()


# (username, department, role, groups, head)
ORG_USERS = [
    ("sysadmin", "PLATFORM", "system_admin", ["platform_admin"], False),
    ("platform", "PLATFORM", "user", ["platform_admin"], True),
    ("office_head", "OFFICE", "user", [], True),
    ("office_admin", "OFFICE", "dept_admin", ["designer"], False),
    ("clerk", "OFFICE", "user", [], False),
    ("fin_head", "FIN", "user", [], True),
    ("fin_admin", "FIN", "dept_admin", [], False),
    ("supervisor", "HQ", "user", ["supervisor"], False),
]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def org(app):
    """A small organisation: HQ with PLATFORM, OFFICE and FIN, one user per role."""
    from service import org as org_module

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_department(s, "HQ", "总部")
        for code, name in (("PLATFORM", "平台管理部"), ("OFFICE", "办公室"), ("FIN", "财务处")):
            org_module.create_department(s, code, name, "HQ")
        for username, dept, role, groups, head in ORG_USERS:
            org_module.create_user(s, username, PASSWORD, dept, role, groups, head)
        s.commit()
        s.close()
    return ORG_USERS


@pytest.fixture
def login(client, org):
    tokens: dict[str, str] = {}

    def _login(username: str, password: str = PASSWORD) -> ApiClient:
        if username not in tokens:
            r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
            assert r.status_code == 200, r.get_json()
            tokens[username] = r.get_json()["access_token"]
        return ApiClient(client, tokens[username])

    return _login


@pytest.fixture
def anon(client):
    return ApiClient(client)
