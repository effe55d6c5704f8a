"""Scheduled archiving (R-DOC-3 "periodic archiving keeps it complete", R-OPS-1 periodic jobs): a daily
job archives documents past the policy age, audited, once a day however many workers run."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from service import scheduler
from service.documents.models import Document
from service.models import AuditEvent, ScheduledJob
from tests.service.documents_helpers import uploaded


def _session(app):
    return app.extensions["inkless.db"]()


def _states(app) -> dict[str, str]:
    s = _session(app)
    try:
        return dict(s.execute(select(Document.title, Document.state)).all())
    finally:
        s.close()


def _archive_events(app) -> list[tuple[str, int | None]]:
    s = _session(app)
    try:
        return s.execute(select(AuditEvent.object_id, AuditEvent.actor_id)
                         .where(AuditEvent.action == "document_archived")).all()
    finally:
        s.close()


def _job(app) -> ScheduledJob:
    s = _session(app)
    try:
        return s.scalar(select(ScheduledJob).where(ScheduledJob.kind == "archive"))
    finally:
        s.close()


def _two_workers(app) -> None:
    """Two workers look for due work at the same moment (threads sharing the frozen clock)."""
    threads = [threading.Thread(target=scheduler.run_due, args=(app,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_daily_archiving_runs_once_a_day_even_with_two_workers(app, login, frozen):
    """R-DOC-3: documents past INKLESS_ARCHIVE_AFTER_DAYS (1095 days) by document date are archived
    at 02:00 platform time, one audited event each, by whichever worker claims the day's job."""
    clerk = login("clerk")
    old = uploaded(clerk, title="旧制度", document_date="2023-01-01")
    uploaded(clerk, title="新通知", document_date="2026-11-01")
    # The first run (2026-12-01 18:00 UTC) archives what is dated before 2023-12-02 (1095 days
    # earlier, 2024 being a leap year); this one is due at the second run only.
    uploaded(clerk, title="临界文件", document_date="2023-12-02")
    with app.test_request_context():
        s = _session(app)
        scheduler.ensure_daily_jobs(s)
        scheduler.ensure_daily_jobs(s)  # idempotent: still one row
        s.commit()
        assert s.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == "archive")) == 1
        s.close()
    # Frozen at 2026-12-01 09:00 Beijing: the first run is at 02:00 the next night.
    assert _job(app).due_at == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    _two_workers(app)
    assert _states(app)["旧制度"] == "active" and not _archive_events(app)

    frozen.advance(hours=17)  # 2026-12-02 02:00 Beijing
    _two_workers(app)
    assert _states(app) == {"旧制度": "archived", "新通知": "active", "临界文件": "active"}
    assert _archive_events(app) == [(str(old["id"]), None)]  # once, by the system
    job = _job(app)
    assert job.fired == 1 and job.attempts == 0
    assert job.due_at == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)

    frozen.advance(hours=12)  # later the same day: nothing more
    _two_workers(app)
    assert _job(app).fired == 1 and len(_archive_events(app)) == 1

    frozen.advance(hours=12)  # 2026-12-03 02:00 Beijing: the next day's run
    _two_workers(app)
    assert _states(app)["临界文件"] == "archived" and _states(app)["新通知"] == "active"
    assert len(_archive_events(app)) == 2 and _job(app).fired == 2
    # Archived documents are read-only but still found (the archive keeps the library complete).
    assert clerk.get(f"/api/v1/documents/{old['id']}").get_json()["state"] == "archived"
