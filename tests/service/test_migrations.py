"""Schema migrations run safely on upgrade (R-OPS-2): an empty database upgrades to head, the models
match what the migrations build, and every migration can be rolled back and applied again."""
from __future__ import annotations

import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from service.db import Base
from service.migrate import alembic_config, upgrade
from tests.conftest import PG_URL, USE_PG, _pg_url


def _fresh_engine(tmp_path):
    if not USE_PG:
        return create_engine(f"sqlite:///{tmp_path / 'migrate.db'}"), None
    schema = f"inkless_mig_{uuid.uuid4().hex[:10]}"
    base = _pg_url(PG_URL)
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return create_engine(f"{base}{sep}options=-csearch_path%3D{schema}"), (admin, schema)


def _dispose(engine, cleanup) -> None:
    """Close the engine and, on PostgreSQL, drop its schema (`_fresh_engine`'s cleanup)."""
    engine.dispose()
    if cleanup:
        admin, schema = cleanup
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _model_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diffs = compare_metadata(context, Base.metadata)
    # The full-text index is built by raw SQL in the documents migration, outside the models: SQLite's
    # FTS5 shadow tables (document_fts*) and PostgreSQL's generated tsvector column on document_search.
    return [d for d in diffs if "document_fts" not in str(d) and "'tsv'" not in str(d)
            and "ix_document_search_tsv" not in str(d)]


def _platform_engine(tmp_path, name: str):
    """The platform's own engine on a fresh database (SQLite foreign keys on, as `inkless init` runs
    migrations), its cleanup, and `migrate(command.upgrade | command.downgrade, revision)` on it."""
    from service.db import make_engine

    if USE_PG:
        engine, cleanup = _fresh_engine(tmp_path)
    else:
        engine, cleanup = make_engine(f"sqlite:///{tmp_path / name}.db"), None
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def migrate(step, revision):
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            step(cfg, revision)

    return engine, cleanup, migrate


def _office_with_clerk(c, moment) -> None:
    """The office department and its clerk (user 1), created at `moment`, in a database of any revision."""
    c.execute(text("INSERT INTO departments (id, code, name) VALUES (1, 'OFFICE', '办公室')"))
    c.execute(text("INSERT INTO users (id, username, full_name, password_hash, department_id, role, active, "
                   "must_change_password, created_at) VALUES (1, 'clerk', '赵科员', 'x', 1, 'user', TRUE, FALSE, "
                   ":at)").bindparams(moment))


def test_empty_database_upgrades_and_matches_the_models_and_migrations_reverse(tmp_path):
    import service.documents.models  # noqa: F401 - the document tables are part of the schema

    engine, cleanup = _fresh_engine(tmp_path)
    try:
        upgrade(engine)
        assert _model_differences(engine) == []
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "base")
        with engine.connect() as connection:
            left = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
        assert left == 0
        upgrade(engine)
        assert _model_differences(engine) == []
    finally:
        _dispose(engine, cleanup)


def test_the_groups_migration_upgrades_a_database_holding_groups_and_members(tmp_path):
    """Issue 14, R-OPS-2: a database at 0010 with users, groups and memberships upgrades (with the
    platform's own engine, SQLite foreign keys on, as `inkless init` runs it): every group stays, as a
    platform group, with its members; the built-in groups gain their English names; a department
    group can then be stored; and the migration rolls back without losing a membership."""

    engine, cleanup, migrate = _platform_engine(tmp_path, "groups")

    def memberships():
        with engine.connect() as c:
            return c.execute(text("SELECT u.username, ug.group_code FROM user_groups ug JOIN users u ON u.id = ug.user_id "
                                  "ORDER BY 1, 2")).all()

    try:
        migrate(command.upgrade, "0010")
        with engine.begin() as c:
            c.execute(text("INSERT INTO departments (id, code, name) VALUES (1, 'OFFICE', '办公室')"))
            c.execute(text("INSERT INTO users (id, username, full_name, password_hash, department_id, role, active, "
                           "must_change_password, created_at) VALUES (1, 'clerk', '赵科员', 'x', 1, 'user', TRUE, FALSE, "
                           "'2026-11-01 00:00:00'), (2, 'office_admin', '张管理员', 'x', 1, 'dept_admin', TRUE, FALSE, "
                           "'2026-11-01 00:00:00')"))
            c.execute(text("INSERT INTO groups (code, name) VALUES ('designer', '流程设计'), ('inspector', '检查员'), "
                           "('legacy', '旧的组')"))
            c.execute(text("INSERT INTO user_groups (user_id, group_code) VALUES (1, 'inspector'), (1, 'legacy'), "
                           "(2, 'designer')"))
        before = memberships()

        migrate(command.upgrade, "head")
        with engine.connect() as c:
            groups = c.execute(text("SELECT code, name, name_en, department_id FROM groups ORDER BY code")).all()
        assert groups == [("designer", "流程设计", "Process designers", None), ("inspector", "检查员", "Inspectors", None),
                          ("legacy", "旧的组", None, None)]
        assert memberships() == before
        assert _model_differences(engine) == []
        with engine.begin() as c:
            c.execute(text("INSERT INTO groups (code, name, department_id) VALUES ('hr', '人事组', 1)"))
            c.execute(text("INSERT INTO user_groups (user_id, group_code) VALUES (1, 'hr')"))

        migrate(command.downgrade, "0010")
        assert memberships() == sorted(before + [("clerk", "hr")])
    finally:
        _dispose(engine, cleanup)


def test_the_keyed_audit_migration_keeps_earlier_events_verifying(tmp_path):
    """Issue 15, R-OPS-2, R-SEC-8: a database at 0011 whose audit log holds events chained with the
    plain SHA-256 formula upgrades; they keep key_id NULL and verify as the legacy start of the log,
    and a keyed event appended after them chains onto their head."""
    import json as _json
    from hashlib import sha256

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from engine import clock
    from service import audit, audit_chain
    from service.documents.keys import Keyring
    from service.models import AuditEvent

    engine, cleanup, migrate = _platform_engine(tmp_path, "audit")

    try:
        migrate(command.upgrade, "0011_groups")
        prev = audit.GENESIS
        with engine.begin() as c:
            for i in (1, 2):
                body = _json.dumps({"at": f"2026-11-0{i}T08:00:00", "actor": None, "action": "login", "type": "user",
                                    "id": str(i), "detail": {}, "addr": None}, sort_keys=True, ensure_ascii=False)
                digest = sha256((prev + body).encode()).hexdigest()  # as service/audit.py wrote it before 0012
                c.execute(text("INSERT INTO audit_events (id, at, actor_id, action, object_type, object_id, detail, "
                               "client_addr, prev_hash, hash) VALUES (:id, :at, NULL, 'login', 'user', :oid, '{}', NULL, "
                               ":prev, :hash)"), {"id": i, "at": f"2026-11-0{i} 08:00:00", "oid": str(i),
                                                  "prev": prev, "hash": digest})
                prev = digest
        migrate(command.upgrade, "head")
        ring = Keyring([b"k" * 32], None)
        with Session(engine) as s:
            assert s.scalars(select(AuditEvent.key_id).order_by(AuditEvent.id)).all() == [None, None]
            kid, key = ring.current()
            event = AuditEvent(id=3, at=clock.now().replace(microsecond=0), action="after", object_type="test",
                               detail={}, prev_hash=prev, key_id=kid)
            event.hash = audit.digest(prev, audit.fields(event), kid, key)
            s.add(event)
            s.commit()
            verdict = audit_chain.verify(s, ring, tmp_path / "no-archives", audit_chain.Anchor())
            assert verdict.ok and verdict.rows == 3, verdict.detail
        migrate(command.downgrade, "0011_groups")
        with engine.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM audit_events")).scalar() == 3
    finally:
        _dispose(engine, cleanup)



def test_the_candidate_keys_migration_copies_each_tasks_sort_key(tmp_path):
    """Issue 16, R-OPS-2, R-WF-2: a database at 0016 with open tasks and their candidates upgrades;
    every candidate carries its task's deadline (or NO_DEADLINE) and creation time, the same values
    the platform writes for a new candidate, so "my tasks" pages the old rows in order; and the
    migration rolls back keeping the candidates."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam, select
    from sqlalchemy.orm import Session

    from service import inbox
    from service.db import UTCDateTime
    from service.models import NO_DEADLINE, TaskCandidate, User

    engine, cleanup, migrate = _platform_engine(tmp_path, "candidates")

    created = datetime(2026, 11, 2, 8, 30, 15, 123456, tzinfo=UTC)
    due = datetime(2026, 11, 9, 17, 0, tzinfo=UTC)
    moment = bindparam("at", created, type_=UTCDateTime())
    try:
        migrate(command.upgrade, "0016_performance_person")
        with engine.begin() as c:
            _office_with_clerk(c, moment)
            c.execute(text("INSERT INTO deployments (id, deployed_at) VALUES (1, :at)").bindparams(moment))
            c.execute(text("INSERT INTO process_definitions (id, key, version, name, description, file, deployment_id, "
                           "deployed_at) VALUES (1, 'leave', 1, '请假', '', 'leave.bpmn', 1, :at)").bindparams(moment))
            c.execute(text("INSERT INTO process_instances (id, definition_id, process_key, version, state, started_by, "
                           "started_at, engine_state, serializer_version, lock_version, active_elements, incidents, "
                           "waiting_messages) VALUES (1, 1, 'leave', 1, 'running', 1, :at, '{}', '1', 1, '[]', '[]', "
                           "'[]')").bindparams(moment))
            for task_id, due_at in (("t-dated", due), ("t-undated", None)):
                c.execute(text("INSERT INTO open_tasks (id, instance_id, process_key, element_id, name, approval, "
                               "instructions, created_at, due_at, overdue, data) VALUES (:id, 1, 'leave', 'approve', "
                               "'审批', FALSE, '', :at, :due, FALSE, '{}')").bindparams(
                                   moment, bindparam("due", due_at, type_=UTCDateTime()), id=task_id))
            c.execute(text("INSERT INTO task_candidates (id, task_id, user_id, group_code) VALUES "
                           "(1, 't-dated', NULL, 'inspector'), (2, 't-dated', 1, NULL), (3, 't-undated', 1, NULL)"))

        migrate(command.upgrade, "head")
        assert _model_differences(engine) == []
        with Session(engine) as s:
            keys = s.execute(select(TaskCandidate.id, TaskCandidate.due_key, TaskCandidate.created_at)
                             .order_by(TaskCandidate.id)).all()
            assert keys == [(1, due, created), (2, due, created), (3, NO_DEADLINE, created)]
            # The copied "no deadline" is the very value a new candidate gets (on SQLite: the same text).
            assert s.scalars(select(TaskCandidate.id).where(TaskCandidate.due_key == NO_DEADLINE)).all() == [3]
            first = s.scalars(inbox.page(inbox.my_tasks(s.get(User, 1)), None, 1)).all()
            assert [t.id for t in first] == ["t-dated"]
            rest = s.scalars(inbox.page(inbox.my_tasks(s.get(User, 1)), inbox.cursor_of(first[0]), 5)).all()
            assert [t.id for t in rest] == ["t-undated"]

        migrate(command.downgrade, "0016_performance_person")
        with engine.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM task_candidates")).scalar() == 3
    finally:
        _dispose(engine, cleanup)


def test_the_audit_append_migration_appends_onto_the_head_of_a_log_holding_events(tmp_path):
    """Issue 16, R-OPS-2, R-SEC-8: a database at 0017 whose log holds keyed events upgrades; on
    PostgreSQL `inkless_audit_append` then appends an event linked to the head in one call, and
    refuses one linked to an earlier event, answering the head; the migration reverses."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from engine import clock
    from service import audit, audit_chain
    from service.documents.keys import Keyring
    from service.models import AuditEvent

    engine, cleanup, migrate = _platform_engine(tmp_path, "append")
    ring = Keyring([b"k" * 32], None)
    kid, key = ring.current()

    def event(prev: str, n: int) -> dict:
        e = AuditEvent(at=clock.now().replace(microsecond=0), action=f"e{n}", object_type="test", object_id=str(n),
                       detail={"n": n}, key_id=kid)
        row = {c: getattr(e, c) for c in ("at", "actor_id", "action", "object_type", "object_id", "detail",
                                          "client_addr", "key_id")}
        return {**row, "prev_hash": prev, "hash": audit.digest(prev, audit.fields(e), kid, key)}

    try:
        migrate(command.upgrade, "0017_candidate_page_keys")
        heads = [audit.GENESIS]
        with Session(engine) as s:
            for n in (1, 2):
                row = event(heads[-1], n)
                s.execute(audit._INSERT, row)
                heads.append(row["hash"])
            s.commit()
        migrate(command.upgrade, "head")
        with Session(engine) as s:
            if USE_PG:
                stale = event(heads[1], 3)
                assert s.scalar(audit._APPEND, stale) == heads[2]  # refused: the head is answered
                fresh = event(heads[2], 3)
                assert s.scalar(audit._APPEND, fresh) is None
                s.commit()
            assert s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all() == (
                ["e1", "e2", "e3"] if USE_PG else ["e1", "e2"])
            verdict = audit_chain.verify(s, ring, tmp_path / "no-archives", audit_chain.Anchor())
            assert verdict.ok, verdict.detail
        migrate(command.downgrade, "0017_candidate_page_keys")
        if USE_PG:
            with engine.connect() as c:
                assert c.execute(text("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                                      "WHERE p.proname = 'inkless_audit_append' AND n.nspname = current_schema()")
                                 ).scalar() == 0
        migrate(command.upgrade, "head")
    finally:
        _dispose(engine, cleanup)


def test_the_notifications_by_task_migration_indexes_a_table_holding_notifications(tmp_path):
    """Issue 16, R-OPS-2: a database at 0019 with notifications upgrades; marking a task's
    notifications read then goes through the new index and changes exactly that task's unread ones;
    the migration rolls back keeping every notification."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam, inspect

    from service import notifications
    from service.db import UTCDateTime

    engine, cleanup, migrate = _platform_engine(tmp_path, "notifications")
    moment = bindparam("at", datetime(2026, 11, 2, 8, 30, tzinfo=UTC), type_=UTCDateTime())
    try:
        migrate(command.upgrade, "0019_audit_lock_per_schema")
        with engine.begin() as c:
            _office_with_clerk(c, moment)
            for n, task_id in enumerate(("t-1", "t-1", "t-2", None)):
                c.execute(text("INSERT INTO notifications (id, user_id, kind, title, body, task_id, created_at) "
                               "VALUES (:id, 1, 'task', '审批', '', :task, :at)").bindparams(moment, id=n + 1, task=task_id))

        migrate(command.upgrade, "head")
        assert _model_differences(engine) == []
        assert "ix_notifications_task" in {i["name"] for i in inspect(engine).get_indexes("notifications")}
        with engine.begin() as c:
            c.execute(notifications.done_with(bindparam("task_ids", expanding=True)),
                      {"task_ids": ["t-1"], "read_at": datetime(2026, 11, 3, tzinfo=UTC)})
            unread = c.execute(text("SELECT id FROM notifications WHERE read_at IS NULL ORDER BY id")).scalars().all()
            assert unread == [3, 4]
            if engine.dialect.name == "sqlite":
                plan = c.execute(text("EXPLAIN QUERY PLAN UPDATE notifications SET read_at = 1 "
                                      "WHERE task_id IN ('t-2') AND read_at IS NULL")).all()
                assert any("USING INDEX ix_notifications_task" in row[3] for row in plan), plan

        migrate(command.downgrade, "0019_audit_lock_per_schema")
        with engine.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM notifications")).scalar() == 4
        assert "ix_notifications_task" not in {i["name"] for i in inspect(engine).get_indexes("notifications")}
    finally:
        _dispose(engine, cleanup)
