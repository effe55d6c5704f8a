"""The caller of an API token is remembered between requests (service/identity_cache.py), and a
change to the account — made in this process or in another one — takes effect on the next request
(R-ACC-1, R-ACC-3, R-SEC-6: revoking a token, deactivating a user, changing a group)."""
from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import select, update

from service.models import AuthToken, User, utcnow
from tests.conftest import subprocess_env
from tests.service.flows import only_task, statements
from tests.service.test_groups import _cli_env, deploy, leave_request, make_hr

TASKS = "/api/v1/tasks"


def _auth_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "FROM auth_tokens" in s]


def _remembered(app, api) -> None:
    """Requests until one reads no token: the caller is remembered (on PostgreSQL, from when this
    process's listener is connected, a moment after the first request)."""
    for _ in range(200):
        with statements(app) as seen:
            assert api.get(TASKS).status_code == 200
        if not _auth_reads(seen):
            return
        time.sleep(0.02)
    raise AssertionError("the caller was never remembered")


def _elsewhere(app, code: str) -> None:
    """Run `code` in another process of the platform (its own app on the same database)."""
    script = ("from sqlalchemy import update\n"
              "from service import create_app\nfrom service.config import Config\n"
              "from service.models import AuthToken, User, utcnow\n"
              "app = create_app(Config.from_env())\n"
              "with app.app_context():\n"
              "    s = app.extensions['inkless.db']()\n"
              f"    {code}\n"
              "    s.commit()\n")
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(**_cli_env(app)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_second_request_with_the_same_token_reads_no_token(app, login):
    clerk = login("clerk")
    _remembered(app, clerk)
    with statements(app) as seen:
        assert clerk.get(TASKS).status_code == 200
    assert _auth_reads(seen) == [], seen


def test_a_token_revoked_by_another_process_is_refused_on_the_next_request(app, login):
    clerk = login("clerk")
    _remembered(app, clerk)
    _elsewhere(app, "s.execute(update(AuthToken).where(AuthToken.revoked_at.is_(None)).values(revoked_at=utcnow()))")
    assert clerk.get(TASKS).status_code == 401


def test_a_user_deactivated_by_another_process_is_refused_on_the_next_request(app, login):
    clerk = login("clerk")
    _remembered(app, clerk)
    _elsewhere(app, "s.execute(update(User).where(User.username == 'clerk').values(active=False))")
    assert clerk.get(TASKS).status_code == 401


def test_a_member_removed_from_a_group_by_the_command_line_no_longer_sees_its_task(app, login):
    make_hr(login)
    assert deploy(login("office_admin"), leave_request()).status_code == 201
    head = login("office_head")
    instance = head.post("/api/v1/process-instances", json={"process_key": "leave_hr"}).get_json()["id"]
    r = head.post(f"/api/v1/tasks/{only_task(head, instance_id=instance)['id']}/complete", json={"data": {}})
    assert r.status_code == 200, r.get_json()
    clerk = login("clerk")
    _remembered(app, clerk)
    assert only_task(clerk, instance_id=instance)["element_id"] == "review"
    done = subprocess.run([sys.executable, "-m", "service.cli", "group", "remove", "hr", "clerk"],
                          env=subprocess_env(**_cli_env(app)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert clerk.get(TASKS, query_string={"instance_id": instance}).get_json()["total"] == 0


def test_a_token_revoked_in_this_process_is_refused_on_the_next_request(app, login):
    clerk = login("clerk")
    _remembered(app, clerk)
    with app.app_context():
        s = app.extensions["inkless.db"]()
        user_id = s.scalar(select(User.id).where(User.username == "clerk"))
        s.execute(update(AuthToken).where(AuthToken.user_id == user_id).values(revoked_at=utcnow()))
        s.commit()
        s.close()
    assert clerk.get(TASKS).status_code == 401


def test_a_remembered_token_ends_when_it_expires(app, login, frozen):
    clerk = login("clerk")
    _remembered(app, clerk)
    with app.app_context():
        s = app.extensions["inkless.db"]()
        token = s.scalars(select(AuthToken).join(User).where(User.username == "clerk")).one()
        left = token.expires_at - utcnow()
        s.close()
    frozen.advance(seconds=left.total_seconds() + 1)
    assert clerk.get(TASKS).status_code == 401
