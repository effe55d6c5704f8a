"""The keyed audit chain and its anchors (issue 15; R-SEC-3, R-SEC-5, R-SEC-8): deleting the tail,
deleting everything, and editing a row then recomputing the chain with the public formula are each
caught by `inkless audit verify` and by the maintenance check; checkpoints are signed and written
outside the database; the key rotates and older events still verify."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from engine import clock
from service import audit, audit_chain, maintenance, scheduler
from service.cli import main as cli
from service.models import AuditEvent, ScheduledJob
from tests.conftest import USE_PG

EVENTS = 150


def _session(app):
    return app.extensions["inkless.db"]()


def _env(app) -> dict:
    cfg = app.config["INKLESS"]
    return {"INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": cfg.secret_key}


def _cli(app, *args):
    return CliRunner().invoke(cli, ["audit", *args], env=_env(app))


def _record(app, n: int, action: str = "test_event") -> None:
    with app.test_request_context():
        s = _session(app)
        for i in range(n):
            audit.record(s, action, "test", i, detail={"i": i, "text": "审计记录"})
        s.commit()
        s.close()


def _ids(app) -> list[int]:
    s = _session(app)
    try:
        return s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    finally:
        s.close()


def _check(admin) -> dict:
    body = admin.get("/api/v1/maintenance").get_json()
    return next(c for c in body["checks"] if c["code"] == "audit_chain")


@pytest.fixture
def anchored(app, login):
    """A log of 150+ events under a checkpoint written by `inkless audit checkpoint`; the system
    administrator signed in before it (signing in is itself audited)."""
    admin = login("sysadmin")
    _record(app, EVENTS)
    written = _cli(app, "checkpoint")
    assert written.exit_code == 0, written.output
    ids = _ids(app)
    assert f"checkpoint at event {ids[-1]} ({len(ids)} events)" in written.output
    verified = _cli(app, "verify")
    assert verified.exit_code == 0 and "audit chain intact" in verified.output, verified.output
    assert _check(admin)["ok"] is True
    return admin, ids


def _delete(app, where) -> None:
    s = _session(app)
    s.execute(delete(AuditEvent).where(where))
    s.commit()
    s.close()


@pytest.mark.parametrize("deleted", [1, 100])
def test_a_deleted_tail_is_caught_against_the_checkpoint(app, anchored, deleted):
    """R-SEC-3, R-SEC-5: deleting the newest event, or the newest 100, leaves a chain whose links
    all hold; the checkpoint outside the database names the missing tail, in the command's exit
    status and message and in the maintenance check."""
    admin, ids = anchored
    kept = ids[-deleted - 1]
    _delete(app, AuditEvent.id > kept)
    result = _cli(app, "verify")
    assert result.exit_code == 1
    assert f"events after {kept} up to {ids[-1]} are missing ({deleted} events)" in result.output
    check = _check(admin)
    assert check["ok"] is False and f"第 {kept} 条之后直到第 {ids[-1]} 条的审计记录缺失" in check["detail"]


def test_deleting_every_event_is_caught(app, anchored):
    """R-SEC-3, R-SEC-5: an emptied table is no clean log: the checkpoint says how many events there were."""
    admin, ids = anchored
    _delete(app, AuditEvent.id > 0)
    result = _cli(app, "verify")
    assert result.exit_code == 1
    assert "every event is missing: the checkpoint of" in result.output and f"{len(ids)} events up to event {ids[-1]}" in result.output
    check = _check(admin)
    assert check["ok"] is False and str(ids[-1]) in check["detail"]


def _rechain(app, from_id: int, kid_of) -> None:
    """Edit event `from_id` and recompute every later MAC with the formula anyone can read in
    service/audit.py, without the key: plain SHA-256 (`kid_of` None) or a key of one's own."""
    s = _session(app)
    prev = s.scalar(select(AuditEvent.prev_hash).where(AuditEvent.id == from_id))
    for event in s.scalars(select(AuditEvent).where(AuditEvent.id >= from_id).order_by(AuditEvent.id)).all():
        if event.id == from_id:
            event.detail = {**event.detail, "text": "改过的记录"}
        kid, key = kid_of(event)
        event.prev_hash, event.key_id = prev, kid
        event.hash = prev = audit.digest(prev, audit.fields(event), kid, key)
    s.commit()
    s.close()


@pytest.mark.parametrize("forger", ["public_sha256", "own_key"])
def test_an_edited_and_rechained_log_is_caught_at_the_edited_event(app, anchored, forger):
    """R-SEC-3, R-SEC-8: someone with the database but not the key edits an event and recomputes
    the chain from there — with the plain SHA-256 formula (rows marked as legacy), or with HMAC
    under a key of their own keeping the row's key id; verification names the edited event."""
    admin, ids = anchored
    edited = ids[len(ids) // 2]
    if forger == "public_sha256":
        _rechain(app, edited, lambda e: (None, None))
        expected = f"event {edited}: written without the audit key after keyed events"
    else:
        _rechain(app, edited, lambda e: (e.key_id, b"k" * 32))
        expected = f"event {edited}: its MAC does not match"
    result = _cli(app, "verify")
    assert result.exit_code == 1 and expected in result.output, result.output
    check = _check(admin)
    assert check["ok"] is False and f"{edited}" in check["detail"]


def test_a_deleted_or_changed_middle_event_is_named(app, anchored):
    """R-SEC-8: without recomputing, a deleted event breaks the next one's link; --from starts
    the walk at a later event and still compares the checkpoint."""
    admin, ids = anchored
    _delete(app, AuditEvent.id == ids[40])
    result = _cli(app, "verify")
    assert result.exit_code == 1 and f"event {ids[41]}: its link to the previous event is broken" in result.output
    later = _cli(app, "verify", "--from", str(ids[60]))
    assert later.exit_code == 1 and "missing against the checkpoint" in later.output, later.output
    assert _check(admin)["ok"] is False


def test_a_forged_checkpoint_is_refused(app, anchored):
    """R-SEC-5: a checkpoint edited to match a truncated log fails its signature."""
    admin, ids = anchored
    _delete(app, AuditEvent.id > ids[-10])
    path = audit_chain.checkpoint_paths(app)[1]
    doc = json.loads(path.read_text())
    doc["body"].update(last_id=ids[-10], rows=len(ids) - 9)
    path.write_text(json.dumps(doc))
    result = _cli(app, "verify")
    assert result.exit_code == 1 and f"checkpoint {path}: its signature does not match" in result.output
    assert _check(admin)["ok"] is False


def test_the_key_is_outside_the_database_and_rotates(app, anchored):
    """R-SEC-3: each event names its key; `inkless audit rotate-key` makes a new one current, the
    events under the old key still verify; without the old key file, verification names the first
    event it cannot check."""
    admin, ids = anchored
    s = _session(app)
    (old,) = s.scalars(select(AuditEvent.key_id).distinct()).all()
    s.close()
    key_dir = app.config["INKLESS"].data_dir / "keys" / "audit"
    assert (key_dir / f"{old}.key").is_file()
    rotated = _cli(app, "rotate-key")
    assert rotated.exit_code == 0, rotated.output
    _record(app, 3)  # this process follows the rotation at its next append
    s = _session(app)
    rows = s.execute(select(AuditEvent.action, AuditEvent.key_id).where(AuditEvent.id > ids[-1])
                     .order_by(AuditEvent.id)).all()
    s.close()
    new = rows[0].key_id
    assert new != old and rows[0].action == "audit_key_rotated" and {r.key_id for r in rows} == {new}
    assert _cli(app, "verify").exit_code == 0 and _check(admin)["ok"] is True
    (key_dir / f"{old}.key").unlink()
    app.extensions.pop(audit.KEYRING)
    result = _cli(app, "verify")
    assert result.exit_code == 1 and f"event {ids[0]}: audit key {old} is not available" in result.output


def test_legacy_events_before_the_key_verify_and_anchor_the_chain(app, login):
    """R-SEC-8: events written with the old plain SHA-256 formula (key_id NULL, before migration
    0012) verify as the log's first segment; the first keyed event chains onto their head."""
    s = _session(app)
    s.execute(delete(AuditEvent))  # the log starts with them
    prev = audit.GENESIS
    for i in range(3):
        event = AuditEvent(at=clock.now().replace(microsecond=0), action="legacy", object_type="test",
                           object_id=str(i), detail={"i": i}, prev_hash=prev)
        event.hash = prev = audit.digest(prev, audit.fields(event), None, None)
        s.add(event)
    s.commit()
    s.close()
    login("sysadmin")
    assert _cli(app, "checkpoint").exit_code == 0
    result = _cli(app, "verify")
    assert result.exit_code == 0, result.output
    s = _session(app)
    legacy_head = s.scalar(select(AuditEvent.hash).where(AuditEvent.action == "legacy").order_by(AuditEvent.id.desc()))
    first_keyed = s.scalar(select(AuditEvent).where(AuditEvent.key_id.is_not(None)).order_by(AuditEvent.id))
    s.close()
    assert first_keyed.prev_hash == legacy_head


def test_the_job_table_writes_checkpoints_at_intervals(app, login, frozen):
    """R-SEC-5: the "audit" job signs a checkpoint in the backup location and the second file,
    then again after the configured interval."""
    login("clerk")
    scheduler.ensure_builtin_jobs(app)
    s = _session(app)
    s.execute(delete(ScheduledJob).where(ScheduledJob.kind != "audit"))
    s.commit()
    s.close()
    assert scheduler.run_due(app) == 1
    first = [json.loads(p.read_text())["body"] for p in audit_chain.checkpoint_paths(app)]
    assert first[0] == first[1] and first[0]["last_id"] == _ids(app)[-1]
    _record(app, 5)
    assert scheduler.run_due(app) == 0  # not due again yet
    frozen.advance(minutes=app.config["INKLESS"].audit_checkpoint_minutes)
    assert scheduler.run_due(app) == 1
    body = json.loads(audit_chain.checkpoint_paths(app)[1].read_text())["body"]
    assert body["last_id"] == _ids(app)[-1] and body["rows"] == first[0]["rows"] + 5
    first_id = _ids(app)[0]
    s = _session(app)
    assert s.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == "audit")) == 1
    s.execute(update(AuditEvent).where(AuditEvent.id == first_id).values(action="tampered"))
    s.commit()
    s.close()
    assert _cli(app, "verify").exit_code == 1


# --- retention (R-SEC-3: kept at least six months, then archived, still verified) ------------------

def _archive(app) -> int:
    with app.test_request_context():
        s = _session(app)
        moved = audit_chain.archive_due(app, s)
        s.commit()
        audit_chain.write_checkpoint(app, s)
        s.close()
    return moved


def _fresh_admin(client):
    """Signed in now (a token from before a jump of 400 days has expired)."""
    from tests.conftest import PASSWORD, ApiClient

    r = client.post("/api/v1/auth/token", json={"username": "sysadmin", "password": PASSWORD})
    return ApiClient(client, r.get_json()["access_token"])


def test_events_past_retention_move_to_signed_archives_that_verify_still_checks(app, client, login, frozen):
    """R-SEC-3, R-SEC-8: with the default 400 days, events older than that move out of the table
    into a signed archive file (the newest event always stays); the chain still verifies through
    the archive, the checkpoint counts the archived events; a changed or removed archive file is
    named by `inkless audit verify` and the maintenance check."""
    assert app.config["INKLESS"].audit_retention_days == 400
    login("sysadmin")
    _record(app, 20, "old_event")
    frozen.advance(days=300)
    _record(app, 5, "younger_event")
    assert _archive(app) == 0  # nothing is 400 days old yet
    frozen.advance(days=101)  # the first events are now 401 days old, the younger ones 101
    before = _ids(app)
    moved = _archive(app)
    s = _session(app)
    actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    s.close()
    assert moved == len(before) - 5 and "old_event" not in actions
    assert actions[:5] == ["younger_event"] * 5 and actions[-1] == "audit_archived"
    (archive,) = audit_chain.archives(audit_chain.archive_dir(app))
    assert archive.name == f"{before[0]:012d}-{before[-6]:012d}.jsonl"
    checkpoint = json.loads(audit_chain.checkpoint_paths(app)[1].read_text())["body"]
    assert checkpoint["rows"] == len(before) + 1 and checkpoint["last_id"] == _ids(app)[-1]
    result = _cli(app, "verify")
    assert result.exit_code == 0 and f"{len(before) + 1} events" in result.output, result.output
    admin = _fresh_admin(client)
    assert _check(admin)["ok"] is True
    with app.test_request_context():  # a backup carries the archive; its trial restore chains through it
        made, record = maintenance.run_backup(app)
    assert record["ok"], record["problems"]
    assert f"audit/archive/{archive.name}" in made.manifest["parts"]

    original = archive.rows_path.read_bytes()
    archive.rows_path.write_bytes(original.replace("审计记录".encode(), "改过记录".encode(), 1))
    result = _cli(app, "verify")
    assert result.exit_code == 1 and f"archive file {archive.name}: the rows differ from the signed file" in result.output
    assert _check(admin)["ok"] is False
    archive.rows_path.unlink()
    archive.sig_path.unlink()
    result = _cli(app, "verify")
    assert result.exit_code == 1 and f"the log starts at event {before[-5]}" in result.output, result.output


def test_the_retention_period_is_configurable_but_never_under_180_days(app, frozen):
    """R-SEC-3 (MLPS 2.0 level 3: audit records kept six months at least)."""
    from service.config import Config

    with pytest.raises(ValueError, match="at least 180"):
        Config.from_env(data_dir=app.config["INKLESS"].data_dir, audit_retention_days=179)
    app.config["INKLESS"].audit_retention_days = 180
    _record(app, 4)
    frozen.advance(days=179)
    assert _archive(app) == 0
    frozen.advance(days=2)
    before = _ids(app)
    assert _archive(app) == len(before) - 1  # all but the newest
    assert _ids(app) == [before[-1], before[-1] + 1]  # and the archiving's own event
    assert _cli(app, "verify").exit_code == 0


def test_appends_from_processes_that_each_remember_a_stale_head_keep_one_chain(app):
    """R-SEC-8: each process remembers the head it appended last, to append in one statement; a
    second process (a second app on the same database) appending in between, and a transaction
    that appended and rolled back, make that memory stale — the guarded insert then writes nothing
    and the head is read, so the chain never forks or links to a row that does not exist."""
    import dataclasses

    from service import create_app

    other = create_app(dataclasses.replace(app.config["INKLESS"]))
    for round_ in range(3):
        _record(app, 2, f"first_{round_}")
        _record(other, 1, f"second_{round_}")
    with app.test_request_context():
        s = _session(app)
        audit.record(s, "rolled_back", "test", 1)
        s.rollback()
        s.close()
    _record(app, 1, "after_rollback")
    s = _session(app)
    try:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.action for e in events][-10:] == [
            "first_0", "first_0", "second_0", "first_1", "first_1", "second_1", "first_2", "first_2", "second_2",
            "after_rollback"]
        for before, after in zip(events, events[1:], strict=False):
            assert after.prev_hash == before.hash, after.action
        assert audit_chain.verify_platform(app, s).ok
    finally:
        s.close()


@pytest.mark.skipif(not USE_PG, reason="PostgreSQL's advisory locks are per database")
def test_a_platform_in_another_schema_of_the_database_never_waits_on_this_chains_lock(app, database_template):
    """R-SEC-8: the chain's lock is the chain's own. An append holds it to the end of its
    transaction; another platform kept in a schema of the same database (a staging copy, a second
    test run) appends meanwhile without waiting, while an append to this chain does wait."""
    import threading

    from sqlalchemy import create_engine, text

    mine = database_template["schema"]
    other = f"{mine}_other"
    url = app.config["INKLESS"].database_url
    admin = create_engine(url)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{other}"'))
        c.execute(text(f'CREATE TABLE "{other}".audit_events (LIKE "{mine}".audit_events INCLUDING ALL)'))

    def holding(search_path: str):
        """A transaction that appended to the chain `search_path` finds, and has not ended."""
        conn = admin.connect()
        conn.execute(text(f"SET search_path TO {search_path}"))
        conn.execute(text("SELECT inkless_audit_append('', now(), NULL, 'held', 'test', NULL, '{}', NULL, 'x', NULL)"))
        return conn

    def append_meanwhile() -> threading.Thread:
        appending = threading.Thread(target=_record, args=(app, 1, "meanwhile"), daemon=True)
        appending.start()
        return appending

    try:
        held = holding(f'"{other}", "{mine}"')
        appending = append_meanwhile()
        appending.join(timeout=20)
        finished_beside_the_other = not appending.is_alive()
        held.rollback()
        held.close()
        appending.join()
        assert finished_beside_the_other, "an append waited on another schema's chain"

        held = holding(f'"{mine}"')
        appending = append_meanwhile()
        appending.join(timeout=0.5)
        waited_on_its_own = appending.is_alive()
        held.rollback()
        held.close()
        appending.join()
        assert waited_on_its_own, "two appends to one chain did not take turns"
        s = _session(app)
        try:
            assert [a for a in s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))][-2:] == [
                "meanwhile", "meanwhile"]
            assert audit_chain.verify_platform(app, s).ok
        finally:
            s.close()
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()
