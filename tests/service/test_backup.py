"""Backups and the maintenance plan (R-SEC-5, R-SEC-3, R-OPS-1): a backup of a working platform
restores it, tampering is caught by verification, the nightly job fires once a day whatever the
number of workers, and system administrators see it all on the maintenance page."""
from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, null, select, update

from service import audit, audit_chain, backup, create_app, maintenance, scheduler
from service.cli import main as cli
from service.config import Config
from service.documents.models import Document
from service.models import AuditEvent, InstanceStep, Notification, ScheduledJob, User
from tests.conftest import ApiClient
from tests.service.documents_helpers import API, set_clearance, uploaded
from tests.service.flows import only_task
from tests.service.test_account_application import _decide, _start_and_fill
from tests.service.test_document_archiving import _two_workers
from tests.service.test_pages import Browser, text

INTERNAL = "内部制度全文:备份之前上传。".encode()
SECRET = "秘密文件正文,加密存放,备份原样复制。".encode() * 50


def _session(app):
    return app.extensions["inkless.db"]()


def _backup(app) -> backup.Backup:
    with app.test_request_context():
        made, record = maintenance.run_backup(app)
    assert record["ok"], record["problems"]
    return made


def _populated(app, login) -> tuple[int, dict, dict]:
    """An account application waiting for the department head, an internal and a secret document."""
    for who in ("office_admin", "office_head", "platform", "clerk", "sysadmin"):
        login(who)  # tokens issued before the backup stay valid after the restore
    instance_id = _start_and_fill(login)
    set_clearance(login, "clerk", "秘密")
    internal = uploaded(login("clerk"), INTERNAL, title="内部制度")
    secret = uploaded(login("clerk"), SECRET, filename="secret.txt", title="秘密文件", security_level="秘密")
    assert secret["encrypted"] is True
    return instance_id, internal, secret


def _blob_files(app) -> list:
    return [p for p in (app.config["INKLESS"].data_dir / "blobs").rglob("*") if p.is_file()]


def _sql_null_step_data(app) -> int:
    s = _session(app)
    try:
        return s.scalar(select(func.count()).select_from(InstanceStep).where(InstanceStep.data.is_(None)))
    finally:
        s.close()


def test_restore_returns_the_platform_to_the_backup(app, login):
    """R-SEC-5, R-SEC-3: back up a working platform; complete a task, delete a document and lose
    the document files; restore refuses the non-empty database, then with force brings back the
    instance at its earlier step (which then completes), the documents with their original bytes
    (the secret one still encrypted at rest), and an audit chain that verifies."""
    instance_id, internal, secret = _populated(app, login)
    s = _session(app)
    s.execute(update(InstanceStep).where(InstanceStep.element_id == "start").values(data=null()))
    s.commit()
    s.close()
    made = _backup(app)
    assert made.manifest["tables"]["process_instances"] == 1 and made.manifest["blobs"] == 2
    sql_nulls = _sql_null_step_data(app)
    assert sql_nulls == 1
    assert made.manifest["schema_revision"]

    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    clerk = login("clerk")
    assert clerk.client.delete(f"{API}/{internal['id']}", headers=clerk._headers()).status_code == 200
    for path in _blob_files(app):
        path.unlink()  # the disk with the documents is lost

    with app.test_request_context(), pytest.raises(backup.BackupError) as refused:
        backup.restore(app, backup.get(app, made.id))
    assert refused.value.code == "not_empty"
    with app.test_request_context():
        counts = backup.restore(app, backup.get(app, made.id), force=True)
    assert counts == made.manifest["tables"]
    assert _sql_null_step_data(app) == sql_nulls  # SQL NULL stays SQL NULL, not JSON null

    office_admin = login("office_admin")
    detail = office_admin.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert detail["state"] == "running" and detail["active_elements"] == ["dept_head_review"]
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    assert _decide(login, "platform", instance_id, "platform_review", "approve")["state"] == "completed"

    assert clerk.get(f"{API}/{internal['id']}/content").data == INTERNAL
    assert clerk.get(f"{API}/{secret['id']}/content").data == SECRET
    assert not any(SECRET[:64] in p.read_bytes() for p in _blob_files(app))
    # New rows after a restore get fresh ids (PostgreSQL sequences follow the restored rows).
    assert uploaded(clerk, b"after the restore", title="恢复之后")["id"] > secret["id"]
    s = _session(app)
    try:
        assert audit_chain.verify_platform(app, s).ok
        restored = s.scalar(select(AuditEvent).where(AuditEvent.action == "backup_restored"))
        assert restored.object_id == made.id and restored.detail["force"] is True
    finally:
        s.close()


def test_a_backup_restores_into_a_new_empty_database(app, login, tmp_path):
    """R-SEC-3, R-SEC-5: the backup location is a second place; a new machine with the same secrets
    and an empty database is restored without --force (the schema is created first)."""
    instance_id, internal, _secret = _populated(app, login)
    made = _backup(app)
    cfg = app.config["INKLESS"]
    data_dir = tmp_path / "new-machine"
    data_dir.mkdir()
    shutil.copytree(cfg.data_dir / "keys", data_dir / "keys")  # kept safe apart from the backups
    other = create_app(Config.from_env(
        data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'inkless.db'}", secret_key=cfg.secret_key,
        backup_dir=backup.location(app), testing=True, session_cookie_secure=False, mfa_enforced=False,
        ratelimit_enabled=False, argon2_time_cost=1, argon2_memory_cost=8))
    try:
        with other.test_request_context():
            backup.restore(other, backup.get(other, made.id))
        client = other.test_client()
        clerk = ApiClient(client, login("clerk").token)
        assert clerk.get(f"{API}/{internal['id']}/content").data == INTERNAL
        office_head = ApiClient(client, login("office_head").token)
        assert only_task(office_head, instance_id=instance_id)["element_id"] == "dept_head_review"
    finally:
        other.extensions["inkless.engine"].dispose()


def _tamper(path, offset=0):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_backups_fail_verification_naming_the_part(app, login):
    """R-SEC-5: verification recomputes every part's SHA-256 and the manifest's HMAC; one changed
    byte in a part, or an edited manifest, fails it and names what; a damaged backup is not restored."""
    _populated(app, login)
    first, second = _backup(app), _backup(app)

    _tamper(first.path / "db/users.jsonl", 10)
    record = backup.verify(app, backup.get(app, first.id))
    assert not record["ok"] and record["problems"] == [{"part": "db/users.jsonl", "problem": "checksum"}]
    with app.test_request_context(), pytest.raises(backup.BackupError) as refused:
        backup.restore(app, backup.get(app, first.id), force=True)
    assert refused.value.code == "damaged" and "db/users.jsonl" in str(refused.value)

    manifest = json.loads((second.path / backup.MANIFEST).read_text())
    manifest["body"]["tables"]["users"] += 1  # hide a row
    (second.path / backup.MANIFEST).write_text(json.dumps(manifest))
    record = backup.verify(app, backup.get(app, second.id))
    assert record["problems"] == [{"part": "manifest.json", "problem": "signature"}]

    # Through the command line too: exit status 1 and the part named.
    env = _cli_env(app)
    result = CliRunner().invoke(cli, ["backup", "verify", first.id], env=env)
    assert result.exit_code == 1 and "db/users.jsonl: checksum" in result.output
    listing = CliRunner().invoke(cli, ["backup", "list"], env=env)
    assert listing.exit_code == 0 and first.id in listing.output and "FAILED" in listing.output


def _cli_env(app) -> dict:
    cfg = app.config["INKLESS"]
    return {"INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": cfg.secret_key}


def test_command_line_backs_up_and_restores_only_when_forced(app, login):
    """R-SEC-5: `inkless backup create` writes and verifies a backup; `restore` refuses a database
    with rows (exit status 1) and with --force returns it to the backup."""
    login("clerk")
    env = _cli_env(app)
    created = CliRunner().invoke(cli, ["backup", "create"], env=env)
    assert created.exit_code == 0 and "verified" in created.output, created.output
    (made,) = backup.all_backups(app)
    uploaded(login("clerk"), b"after the backup", title="备份之后")
    refused = CliRunner().invoke(cli, ["backup", "restore", made.id], env=env)
    assert refused.exit_code == 1 and "--force" in refused.output
    restored = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force"], env=env)
    assert restored.exit_code == 0 and f"restored {made.id}" in restored.output
    s = _session(app)
    try:
        assert s.scalar(select(func.count()).select_from(Document)) == 0
        assert s.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "backup_restored"
    finally:
        s.close()


def test_trial_restore_catches_a_consistent_but_incomplete_backup(app, login):
    """R-SEC-5: a backup whose hashes and signature are right but whose rows miss a referenced
    document file fails the trial restore, naming the missing file."""
    _populated(app, login)
    made = _backup(app)
    manifest = json.loads((made.path / backup.MANIFEST).read_text())
    body = manifest["body"]
    lost = next(p for p in body["parts"] if p.startswith("blobs/plain/"))
    (made.path / lost).unlink()
    del body["parts"][lost]
    manifest["hmac"] = backup._mac(app.config["INKLESS"].secret_key, body)  # someone with the key
    (made.path / backup.MANIFEST).write_text(json.dumps(manifest))
    record = backup.verify(app, backup.get(app, made.id))
    assert record["problems"] == [{"part": lost, "problem": "missing"}]


def _backup_job(app) -> ScheduledJob:
    s = _session(app)
    try:
        return s.scalar(select(ScheduledJob).where(ScheduledJob.kind == "backup"))
    finally:
        s.close()


def test_nightly_backup_runs_once_a_day_with_two_workers_and_keeps_the_newest(app, login, frozen):
    """R-SEC-5, R-OPS-1: the backup job fires at 02:30 Beijing time, once a day with two workers,
    verifies what it wrote, and keeps the newest INKLESS_BACKUP_KEEP backups."""
    login("clerk")
    app.config["INKLESS"].backup_keep = 2
    with app.test_request_context():
        s = _session(app)
        scheduler.ensure_daily_jobs(s)
        scheduler.ensure_daily_jobs(s)
        s.commit()
        assert s.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.kind == "backup")) == 1
        s.close()
    assert _backup_job(app).due_at == datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
    _two_workers(app)
    assert backup.all_backups(app) == []

    frozen.advance(hours=17, minutes=30)  # 2026-12-02 02:30 Beijing
    _two_workers(app)
    backups = backup.all_backups(app)
    assert [b.id for b in backups] == ["20261201T183000Z"] and backups[0].verification["ok"]
    job = _backup_job(app)
    assert job.fired == 1 and job.attempts == 0 and job.due_at == datetime(2026, 12, 2, 18, 30, tzinfo=UTC)

    for _ in range(2):
        frozen.advance(days=1)
        _two_workers(app)
    assert [b.id for b in backup.all_backups(app)] == ["20261203T183000Z", "20261202T183000Z"]
    assert _backup_job(app).fired == 3


def test_a_failed_nightly_backup_is_told_to_system_administrators(app, login, frozen, tmp_path):
    """R-OPS-1, R-SEC-5: when the backup cannot be written the job records the error, moves to the
    next night, and every system administrator finds it in their notifications."""
    login("clerk")
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    app.config["INKLESS"].backup_dir = blocked
    with app.test_request_context():
        s = _session(app)
        scheduler.ensure_daily_jobs(s)
        s.commit()
        s.close()
    frozen.advance(hours=17, minutes=30)
    _two_workers(app)
    job = _backup_job(app)
    assert job.attempts == 1 and "Error" in job.last_error and job.due_at == datetime(2026, 12, 2, 18, 30, tzinfo=UTC)
    s = _session(app)
    try:
        notes = s.execute(select(User.username, Notification.kind).join(User, User.id == Notification.user_id)
                          .where(Notification.kind == "maintenance")).all()
    finally:
        s.close()
    assert notes == [("sysadmin", "maintenance")]
    assert "维护" in login("sysadmin").get("/api/v1/notifications").get_data(as_text=True)


@pytest.fixture
def browser(app, org):
    def _open(username: str) -> Browser:
        b = Browser(app)
        b.sign_in(username)
        return b
    return _open


def test_maintenance_page_is_for_system_administrators(app, browser):
    """R-OPS-1, R-SEC-5: system administrators see the daily checks, the scheduled jobs and the
    backups, back up now and verify (CSRF-protected, audited); nobody else sees the page or the link."""
    clerk = browser("clerk")
    assert clerk.get("/maintenance").status_code == 403
    assert 'href="/maintenance"' not in text(clerk.get("/"))
    assert clerk.post("/maintenance/backups").status_code == 403
    assert browser("office_admin").get("/maintenance").status_code == 403

    admin = browser("sysadmin")
    with app.test_request_context():
        s = _session(app)
        scheduler.ensure_daily_jobs(s)
        s.commit()
        s.close()
    page = text(admin.get("/maintenance"))
    assert 'href="/maintenance"' in page and "日常检查" in page and "数据库可连接" in page
    assert "backup:nightly" in page and "archive:documents" in page and "尚无备份" in page

    assert admin.post("/maintenance/backups", csrf=False).status_code in (400, 403)
    r = admin.post("/maintenance/backups")
    assert r.status_code == 303
    (made,) = backup.all_backups(app)
    page = text(admin.get("/maintenance"))
    assert made.id in page and "已验证" in page
    _tamper(made.path / "db/departments.jsonl")
    admin.post(f"/maintenance/backups/{made.id}/verify")
    page = text(admin.get("/maintenance"))
    assert "db/departments.jsonl" in page and "校验和不符" in page
    assert admin.post("/maintenance/backups/..%2Fx/verify").status_code == 404
    blocked = app.config["INKLESS"].data_dir / "a-file"
    blocked.write_text("")
    app.config["INKLESS"].backup_dir = blocked
    r = admin.post("/maintenance/backups")
    assert r.status_code == 303 and "备份失败" in text(admin.get("/maintenance"))
    s = _session(app)
    try:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "backup")).all()
        assert actions == ["backup_created", "backup_verified", "backup_failed"]
        assert s.scalar(select(func.count()).select_from(Document)) == 0
    finally:
        s.close()


def test_daily_checks_flag_a_backup_older_than_26_hours(app, login, frozen):
    """R-OPS-1, R-SEC-5: the checks (also as JSON for monitoring, system administrators only) pass
    with a fresh verified backup and flag it once it is more than 26 hours old."""
    admin = login("sysadmin")
    assert login("clerk").get("/api/v1/maintenance").status_code == 403

    def checks():
        body = admin.get("/api/v1/maintenance").get_json()
        return {c["code"]: c["ok"] for c in body["checks"]}, body

    result, _ = checks()
    assert result["last_backup"] is False and result["database"] and result["audit_chain"]
    made = _backup(app)
    result, body = checks()
    assert result == {"database": True, "audit_chain": True, "disk_data": result["disk_data"],
                      "disk_backups": result["disk_backups"], "last_backup": True}
    assert body["backups"][0]["id"] == made.id and body["backups"][0]["verification"]["ok"] is True
    frozen.advance(hours=26, minutes=1)
    assert checks()[0]["last_backup"] is False


# --- the database part encrypted, the keys checked up front, no restore under a running platform ----

def test_the_database_part_is_encrypted_and_its_key_is_not_in_the_backup(app, login):
    """R-SEC-5, R-SEC-3: every db/*.jsonl part is AES-256-GCM ciphertext (no name, username or
    row in clear); its data key is in the manifest only wrapped by a master key, and no master
    or audit key is anywhere in the backup; the round trip restores every row and document."""
    instance_id, internal, secret = _populated(app, login)
    made = _backup(app)
    sealed = made.manifest["encryption"]
    cfg = app.config["INKLESS"]
    assert sealed["algorithm"] == "AES-256-GCM" and (cfg.data_dir / "keys" / f"{sealed['master_key_id']}.key").is_file()
    files = [p for p in made.path.rglob("*") if p.is_file()]
    for part in (p for p in files if p.parent.name == "db"):
        data = part.read_bytes()
        assert b"office_head" not in data and "赵科员".encode() not in data and b'"id"' not in data, part
    keys = [p for p in (cfg.data_dir / "keys").rglob("*.key")]
    assert len(keys) >= 2  # a master key and an audit key
    for key_file in keys:
        encoded = key_file.read_text().strip().encode()
        raw = base64.b64decode(encoded)
        assert not any(encoded in p.read_bytes() or raw in p.read_bytes() for p in files), key_file

    uploaded(login("clerk"), b"after the backup", title="备份之后")
    with app.test_request_context():
        counts = backup.restore(app, backup.get(app, made.id), force=True)
    assert counts == made.manifest["tables"]
    clerk = login("clerk")
    assert clerk.get(f"{API}/{secret['id']}/content").data == SECRET
    assert clerk.get(f"{API}/{internal['id']}/content").data == INTERNAL


def test_restore_without_the_keys_is_refused_before_anything_is_replaced(app, login, tmp_path):
    """R-SEC-5: on a machine without the key directory, `backup verify` names the master keys
    (database part, secret documents) and the audit key it lacks, and `restore` refuses up front
    — the new database stays without a single table; on the platform itself, with the keys moved
    away, `backup restore --force` refuses and every row stays."""
    _populated(app, login)
    made = _backup(app)
    needed = made.manifest["keys"]
    cfg = app.config["INKLESS"]
    data_dir = tmp_path / "new-machine"
    data_dir.mkdir()
    other = create_app(Config.from_env(
        data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'inkless.db'}", secret_key=cfg.secret_key,
        backup_dir=backup.location(app), testing=True, session_cookie_secure=False, mfa_enforced=False,
        ratelimit_enabled=False, argon2_time_cost=1, argon2_memory_cost=8))
    try:
        record = backup.verify(other, backup.get(other, made.id))
        (problem,) = record["problems"]
        assert problem["problem"] == "keys_missing"
        assert f"master key {made.manifest['encryption']['master_key_id']} (the database part)" in problem["detail"]
        assert all(f"master key {k} (secret documents)" in problem["detail"] for k in needed["documents"])
        assert needed["documents"] and needed["audit"]
        assert all(f"audit key {k} (the audit chain)" in problem["detail"] for k in needed["audit"])
        with other.test_request_context(), pytest.raises(backup.BackupError) as refused:
            backup.restore(other, backup.get(other, made.id))
        assert refused.value.code == "keys_missing" and needed["audit"][0] in str(refused.value)
        assert inspect(other.extensions["inkless.engine"]).get_table_names() == []
        assert not (data_dir / "blobs").exists()
    finally:
        other.extensions["inkless.engine"].dispose()

    moved = tmp_path / "keys-elsewhere"
    shutil.move(cfg.data_dir / "keys", moved)
    for held in ("inkless.documents.keys", audit.KEYRING):
        app.extensions.pop(held, None)
    users = _count(app, User)
    result = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force"], env=_cli_env(app))
    assert result.exit_code == 1 and "the keys to open this backup are not here" in result.output, result.output
    assert _count(app, User) == users
    shutil.move(moved, cfg.data_dir / "keys")


def _count(app, model) -> int:
    s = _session(app)
    try:
        return s.scalar(select(func.count()).select_from(model))
    finally:
        s.close()


def test_restore_is_refused_while_a_server_runs(app, login):
    """R-SEC-5: a running `inkless serve` leaves a live-process record; `backup restore --force`
    refuses naming it, and so does --processes-stopped while it lives. Stopped normally it removes
    its record and the restore runs; killed (-9) its record stays, and only --processes-stopped,
    once nothing holds it, lets the restore run."""
    from tests.service.test_durability import Server

    login("clerk")
    made = _backup(app)
    env = _cli_env(app)
    server = Server(app)
    server.env["INKLESS_NO_SCHEDULER"] = "1"
    server.start()
    try:
        pid = server.proc.pid
        for flags in ([], ["--processes-stopped"]):
            refused = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force", *flags], env=env)
            assert refused.exit_code == 1 and f"in use by server (process {pid}" in refused.output, refused.output
        server.proc.terminate()
        server.proc.wait(timeout=10)
        restored = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force"], env=env)
        assert restored.exit_code == 0, restored.output

        server.start()
        pid = server.proc.pid
        server.kill()
        refused = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force"], env=env)
        assert refused.exit_code == 1 and f"server (process {pid}" in refused.output and "--processes-stopped" in refused.output
        restored = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force", "--processes-stopped"], env=env)
        assert restored.exit_code == 0, restored.output
        assert list((app.config["INKLESS"].data_dir / "run").iterdir()) == []
    finally:
        if server.proc.poll() is None:
            server.kill()


def test_every_backup_is_copied_to_the_copy_location_and_verified_there(app, login, tmp_path):
    """R-SEC-5 (issue 15): with INKLESS_BACKUP_COPY_DIR set, `backup create` copies the verified
    backup there and verifies the copy on its own (a progress bar on stderr meanwhile); a backup
    damaged in the first location fails its verification while its copy still verifies, and the
    copy restores the platform; the daily checks watch the copy location too."""
    _populated(app, login)
    copies = tmp_path / "copies"
    env = dict(_cli_env(app), INKLESS_BACKUP_COPY_DIR=str(copies))
    created = CliRunner().invoke(cli, ["backup", "create"], env=env)
    assert created.exit_code == 0, created.output
    (made,) = backup.all_backups(app)
    assert f"copy {made.id}: verified" in created.output
    assert "backup" in created.stderr and "check" in created.stderr and "copy" in created.stderr  # the bars
    copy_path = copies / made.id
    assert json.loads((copy_path / backup.VERIFICATION).read_text())["ok"] is True
    assert (copy_path / backup.MANIFEST).read_bytes() == (made.path / backup.MANIFEST).read_bytes()

    _tamper(made.path / "db/users.jsonl", 10)
    first = CliRunner().invoke(cli, ["backup", "verify", made.id], env=env)
    assert first.exit_code == 1 and "db/users.jsonl: checksum" in first.output
    second = CliRunner().invoke(cli, ["backup", "verify", made.id, "--copy"], env=env)
    assert second.exit_code == 0 and f"{made.id}: verified" in second.output
    listing = CliRunner().invoke(cli, ["backup", "list", "--copy"], env=env)
    assert made.id in listing.output and "verified" in listing.output

    app.config["INKLESS"].backup_copy_dir = copies
    try:
        with app.test_request_context():
            s = _session(app)
            codes = {c.code: c.ok for c in maintenance.checks(app, s)}
            s.close()
        assert codes["last_copy"] is True and "disk_copies" in codes
        uploaded(login("clerk"), b"after the backup", title="备份之后")
        restored = CliRunner().invoke(cli, ["backup", "restore", made.id, "--force", "--copy"], env=env)
        assert restored.exit_code == 0 and f"restored {made.id}" in restored.output, restored.output
    finally:
        app.config["INKLESS"].backup_copy_dir = None
    s = _session(app)
    try:
        assert s.scalar(select(func.count()).select_from(Document).where(Document.title == "备份之后")) == 0
    finally:
        s.close()
