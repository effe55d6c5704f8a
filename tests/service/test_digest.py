"""The supervisors' daily digest (R-SUP-1): once a day, with two workers firing at the same moment."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from service import digest
from service.models import Notification, OpenTask, ScheduledJob, User
from service.scheduler import ensure_builtin_jobs, run_due
from tests.service.test_analytics import History, _deploy


def _digests(app) -> list[Notification]:
    s = app.extensions["inkless.db"]()
    try:
        return list(s.scalars(select(Notification).join(User, User.id == Notification.user_id)
                              .where(Notification.kind == "digest").order_by(Notification.id)))
    finally:
        s.close()


def _two_workers(app) -> None:
    """Two schedulers look for due work at the same moment, as two `inkless worker`s would."""
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        run_due(app)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)


def test_digest_reaches_each_supervisor_once_a_day(app, org, login, frozen):
    _deploy(app, "stats")
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        h = History(s, "stats")
        stuck = h.instance(1, "OFFICE")
        stuck.state = "error"
        waiting = h.instance(1, "OFFICE")
        waiting.state = "running"
        s.add(OpenTask(id="late-task", instance_id=waiting.id, process_key="stats", element_id="prepare",
                       name="准备", overdue=True, due_at=frozen.current - timedelta(hours=2)))
        s.commit()
        s.close()
    ensure_builtin_jobs(app)
    ensure_builtin_jobs(app)  # a second scheduler starting changes nothing

    # 2026-12-01 09:00 Beijing: today's 08:00 has passed, the first digest is tomorrow morning.
    _two_workers(app)
    assert _digests(app) == []
    frozen.advance(hours=23)  # 2026-12-02 08:00
    _two_workers(app)
    first = _digests(app)
    assert [n.user_id for n in first] == [_user_id(app, "supervisor")]
    frozen.advance(hours=6)
    _two_workers(app)
    assert len(_digests(app)) == 1  # not again the same day
    frozen.advance(hours=18)  # 2026-12-03 08:00
    _two_workers(app)
    assert len(_digests(app)) == 2

    r = login("supervisor").get("/api/v1/notifications")
    messages = [n["message"] for n in r.get_json()["items"] if n["kind"] == "digest"]
    assert messages[-1] == "每日汇总 2026-12-02:逾期任务 1 项,因故障停止的流程实例 1 个"
    assert "准备" in first[0].body and f"#{stuck.id}" in first[0].body


def test_after_an_outage_the_digest_is_sent_once_not_per_missed_day(app, org, frozen):
    ensure_builtin_jobs(app)
    frozen.advance(days=5)
    _two_workers(app)
    _two_workers(app)
    assert len(_digests(app)) == 1
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        job = s.scalar(select(ScheduledJob).where(ScheduledJob.kind == "digest"))
        assert job.due_at == digest.next_due(frozen.current) and job.fired == 1
        s.close()


def _user_id(app, username: str) -> int:
    s = app.extensions["inkless.db"]()
    try:
        return s.scalar(select(User.id).where(User.username == username))
    finally:
        s.close()

