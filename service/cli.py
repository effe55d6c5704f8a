"""The `inkless` command: init, serve, department/user/group administration, deploy."""
from __future__ import annotations

import secrets
import sys
import threading
from pathlib import Path

import click
from flask import Flask

from . import create_app
from .config import Config


def _app() -> Flask:
    return create_app(Config.from_env())


def _ready_app(no_wait: bool) -> Flask:
    """The app for serve, init and worker: one line instead of a traceback when the database or
    the storage is away, and a wait for the database (service/startup.py)."""
    from . import startup

    return startup.ready_app(_app, no_wait)


_NO_WAIT = click.option("--no-wait", is_flag=True,
                        help="Give up at once when the database does not answer (else wait INKLESS_DB_WAIT seconds, 60 by default).")


def _session(app: Flask):
    return app.extensions["inkless.db"]()


@click.group()
def main() -> None:
    """Inkless paperless office platform."""


DEMO_DEPARTMENTS = [
    ("HQ", "青海省平台管理中心", None),
    ("PLATFORM", "平台管理部", "HQ"),
    ("OFFICE", "办公室", "HQ"),
    ("FIN", "财务处", "HQ"),
]

# (username, full name, department, role, groups, head)
DEMO_USERS = [
    ("sysadmin", "系统管理员", "PLATFORM", "system_admin", ["platform_admin"], False),
    ("platform", "平台管理部 王审核", "PLATFORM", "user", ["platform_admin"], True),
    ("office_head", "办公室 李主任", "OFFICE", "user", [], True),
    ("office_admin", "办公室 张管理员", "OFFICE", "dept_admin", ["designer"], False),
    ("clerk", "办公室 赵科员", "OFFICE", "user", [], False),
    ("fin_head", "财务处 陈处长", "FIN", "user", [], True),
    ("fin_admin", "财务处 刘管理员", "FIN", "dept_admin", [], False),
    ("supervisor", "监督小组 周组长", "HQ", "user", ["supervisor"], False),
]


@main.command()
@click.option("--demo", is_flag=True, help="Also create a demo organisation with one user per role.")
@_NO_WAIT
def init(demo: bool, no_wait: bool) -> None:
    """Create or migrate the database and deploy the built-in process models."""
    from . import startup

    app = _ready_app(no_wait)
    startup.fail_in_one_line(lambda: _init(app, demo))


def _init(app: Flask, demo: bool) -> None:
    from . import definitions, migrate, org, scheduler
    from .models import User

    cfg = app.config["INKLESS"]
    with app.app_context():
        migrate.upgrade(app.extensions["inkless.engine"])
        s = _session(app)
        org.ensure_groups(s)
        created = definitions.deploy_directory(s, cfg.process_models_dir, cfg.forms_dir)
        scheduler.ensure_daily_jobs(s)
        s.commit()
        for d in created:
            click.echo(f"deployed {d.key} version {d.version}")
        if demo and s.query(User).count() == 0:
            for code, name, parent in DEMO_DEPARTMENTS:
                org.create_department(s, code, name, parent)
            click.echo("demo users (username / password):")
            for username, full_name, dept, role, groups, head in DEMO_USERS:
                password = secrets.token_urlsafe(9)
                org.create_user(s, username, password, dept, role, groups, head, full_name)
                click.echo(f"  {username:13s} {password}   {role}{' +' + ','.join(groups) if groups else ''}"
                           f"{' (head of ' + dept + ')' if head else ''}")
            s.commit()
        s.close()
    click.echo(f"database ready: {cfg.database_url.split('@')[-1]}")


def _record_security_policy(app) -> None:
    from .identity import policy

    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            if policy.record_if_changed(s, app.config["INKLESS"]):
                s.commit()
        finally:
            s.close()


def _announce(app: Flask, kind: str) -> None:
    """A live-process record a restore looks for (service/liveness.py); SIGTERM exits normally,
    so a stopped process removes it."""
    import signal

    from . import liveness

    try:
        liveness.announce(app, kind)
    except OSError as e:  # a read-only or full data directory: serve 503s rather than not start
        click.echo(f"warning: no live-process record ({e.strerror}); a restore cannot see this {kind}", err=True)
    signal.signal(signal.SIGTERM, _stop)


# Set by SIGTERM. The handler's SystemExit is lost when it lands in code that ignores exceptions (a
# weakref callback during garbage collection); the worker's loop then sees this and ends itself.
_STOPPING = threading.Event()


def _stop(*_) -> None:
    _STOPPING.set()
    sys.exit(0)


@main.command()
@click.option("--host", default="127.0.0.1", envvar="INKLESS_HOST", show_default=True)
@click.option("--port", default=5000, type=int, envvar="INKLESS_PORT", show_default=True)
@click.option("--bind", default=None, envvar="INKLESS_BIND",
              help="host:port or unix:/path, instead of --host/--port.")
@click.option("--workers", default=1, type=click.IntRange(1), envvar="INKLESS_WORKERS", show_default=True,
              help="Web processes.")
@click.option("--threads", default=8, type=click.IntRange(1), envvar="INKLESS_THREADS", show_default=True,
              help="Request threads per web process.")
@click.option("--scheduler", type=click.Choice(["auto", "embedded", "off"]), default="auto",
              envvar="INKLESS_SCHEDULER", show_default=True,
              help="Timers in the web process (embedded, one web process only) or only in `inkless worker` "
                   "(off); auto is embedded with one web process.")
@click.option("--access-log", default="-", envvar="INKLESS_ACCESS_LOG", show_default=True,
              help="File for the access log (combined format); - is standard output, empty for none.")
@_NO_WAIT
def serve(host: str, port: int, bind: str | None, workers: int, threads: int, scheduler: str,
          access_log: str, no_wait: bool) -> None:
    """Run the web server (gunicorn; HUP reloads gracefully)."""
    import os

    from . import startup
    from .serving import Serving, run

    if os.environ.get("INKLESS_NO_SCHEDULER"):
        scheduler = "off"
    serving = Serving(bind=bind or f"{host}:{port}", workers=workers, threads=threads, scheduler=scheduler,
                      access_log=access_log)
    try:
        serving.embedded_scheduler()
    except ValueError as refusal:
        raise click.UsageError(str(refusal)) from None
    app = _ready_app(no_wait)
    _announce(app, "server")
    startup.tolerate(lambda: _record_security_policy(app), "recording the security policy")
    run(app, _app, serving)


@main.command()
@click.option("--interval", default=1.0, type=float, help="Seconds between looks for due work.")
@click.option("--once", is_flag=True, help="Fire what is due now and exit.")
@_NO_WAIT
def worker(interval: float, once: bool, no_wait: bool) -> None:
    """Fire due timers, deadlines and timer start events (several workers may run at once)."""
    from . import startup
    from .scheduler import ensure_builtin_jobs, run_due, seconds_to_next

    app = _ready_app(no_wait)
    _announce(app, "worker")
    startup.tolerate(lambda: ensure_builtin_jobs(app), "checking the built-in jobs")
    if once:
        click.echo(f"fired {run_due(app)}")
        return
    while True:
        fired = run_due(app)
        # Until the next job is due, looking again at least every `interval` for jobs that other
        # processes add meanwhile; a job still due after a round that fired nothing could not
        # fire now (its instance was busy, it failed) and waits the interval, not a busy loop.
        wait = seconds_to_next(app, interval)
        if _STOPPING.wait(max(0.01, interval if wait == 0 and not fired else wait)):
            sys.exit(0)


@main.group()
def department() -> None:
    """Departments."""


@department.command("create")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--parent", default=None, help="Parent department code.")
@click.option("--name-en", default=None, help="The name in English (shown under ?lang=en).")
def department_create(code: str, name: str, parent: str | None, name_en: str | None) -> None:
    from .org import OrgError, create_department

    app = _app()
    with app.app_context():
        s = _session(app)
        try:
            create_department(s, code, name, parent, name_en=name_en)
            s.commit()
        except OrgError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"department {code} created")


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--department", "department_code", required=True)
@click.option("--role", default="user", type=click.Choice(["user", "dept_admin", "system_admin"]))
@click.option("--group", "groups", multiple=True)
@click.option("--head", is_flag=True, help="Make the user head of the department.")
@click.option("--full-name", default=None)
def user_create(username, password, department_code, role, groups, head, full_name) -> None:
    from .org import OrgError, create_user

    app = _app()
    with app.app_context():
        s = _session(app)
        try:
            create_user(s, username, password, department_code, role, list(groups), head, full_name)
            s.commit()
        except OrgError as e:
            raise click.ClickException(str(e)) from None
        finally:
            s.close()  # a refusal must not keep the database locked (SQLite)
    click.echo(f"user {username} created")


@main.group("group")
def group_cmd() -> None:
    """Functional groups: a department's own (--department) or the platform's."""


def _group_change(change) -> None:
    """Run `change(session)` as the installer in one transaction; a refusal is the command's error."""
    from .errors import ApiError

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            change(s)
            s.commit()
        except ApiError as e:
            s.rollback()
            raise click.ClickException(e.message) from None
        finally:
            s.close()


@group_cmd.command("create")
@click.argument("code")
@click.option("--name", required=True, help="The Chinese name people read.")
@click.option("--name-en", default=None, help="The English name (optional).")
@click.option("--department", default=None, help="The department that keeps it (default: the platform).")
def group_create(code: str, name: str, name_en: str | None, department: str | None) -> None:
    from . import groups

    _group_change(lambda s: groups.create(s, None, code, name, name_en, department))
    click.echo(f"group {code} created")


@group_cmd.command("rename")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--name-en", default=None)
def group_rename(code: str, name: str | None, name_en: str | None) -> None:
    from . import groups

    changes = {k: v for k, v in (("name", name), ("name_en", name_en)) if v is not None}
    _group_change(lambda s: groups.update(s, None, code, changes))
    click.echo(f"group {code} renamed")


@group_cmd.command("add")
@click.argument("code")
@click.argument("username")
def group_add(code: str, username: str) -> None:
    from . import groups

    _group_change(lambda s: groups.add_member(s, None, code, username))
    click.echo(f"{username} added to group {code}")


@group_cmd.command("remove")
@click.argument("code")
@click.argument("username")
def group_remove(code: str, username: str) -> None:
    from . import groups

    _group_change(lambda s: groups.remove_member(s, None, code, username))
    click.echo(f"{username} removed from group {code}")


@group_cmd.command("delete")
@click.argument("code")
def group_delete(code: str) -> None:
    from . import groups

    _group_change(lambda s: groups.delete(s, None, code))
    click.echo(f"group {code} deleted")


@group_cmd.command("list")
def group_list() -> None:
    """Every group: code, department (- for the platform), name, members."""
    from . import groups

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            for listed in groups.visible(s, None):
                g = listed.group
                members = ",".join(m.username for m in listed.members)
                click.echo(f"{g.code:24s} {listed.department or '-':10s} {g.name}"
                           f"{' / ' + g.name_en if g.name_en else ''}  [{members}]")
        finally:
            s.close()


def deployable_files(paths) -> list[tuple[str, bytes]]:
    """The .bpmn/.dmn/.json files named or found under `paths`. A `tests` folder inside a directory
    holds a model's scenario tests (process_models/<key>/tests/*.json), which are not forms."""
    files = []
    for path in paths:
        if path.is_dir():
            candidates = [p for p in sorted(path.rglob("*")) if "tests" not in p.relative_to(path).parts[:-1]]
        else:
            candidates = [path]
        files += [(p.name, p.read_bytes()) for p in candidates if p.suffix in (".bpmn", ".dmn", ".json")]
    return files


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--as", "as_user", metavar="USERNAME",
              help="Deploy on behalf of this user, with their rights: ownership of the process and the "
                   "authority of the services it calls. Without it the operator deploys for the platform, "
                   "whose own procedures may call every service.")
def deploy(paths: tuple[Path, ...], as_user: str | None) -> None:
    """Deploy .bpmn/.dmn/.json files (or directories of them) as new versions."""
    from sqlalchemy import select

    from . import definitions, policy
    from .errors import ApiError
    from .models import User

    files = deployable_files(paths)
    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:  # closing the session on every exit ends its transaction, so nothing stays locked
            user = None
            if as_user is not None:
                user = s.scalar(select(User).where(User.username == as_user, User.active.is_(True)))
                if user is None or not policy.allows(user, "deploy", "process_definition"):
                    click.echo(f"error: {as_user} is not an active user who may deploy processes", err=True)
                    sys.exit(1)
            created = definitions.deploy(s, user, files)
            s.commit()
        except ApiError as e:
            click.echo(f"error: {e.message}", err=True)
            for d in e.details or []:
                click.echo(f"  {d.get('file')}: {d.get('element') or ''}: {d.get('message')}", err=True)
            sys.exit(1)
        finally:
            s.close()
    for d in created:
        click.echo(f"deployed {d.key} version {d.version}")


@main.group("backup")
def backup_group() -> None:
    """Backups in INKLESS_BACKUP_DIR (default <data dir>/backups): create, list, verify, restore."""


class _Bar:
    """backup.Progress drawn as click's progress bar on the terminal (stderr, so output stays parseable)."""

    def __init__(self):
        self.bar = None

    def begin(self, label: str, total: int) -> None:
        self.end()
        self.bar = click.progressbar(length=max(total, 1), label=f"{label:<7}", file=sys.stderr, width=30)
        self.bar.__enter__()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


_COPY = click.option("--copy", is_flag=True, help="The copy in INKLESS_BACKUP_COPY_DIR, not the backup itself.")


@backup_group.command("create")
def backup_create() -> None:
    """Back up the database and the document files now, verify the backup, copy it to the copy
    location (INKLESS_BACKUP_COPY_DIR) and verify the copy there."""
    from .maintenance import run_backup

    app = _app()
    bar = _Bar()
    with app.test_request_context():
        try:
            made, record = run_backup(app, bar)
        finally:
            bar.end()
    click.echo(f"{made.id}  {made.rows} rows  {made.size} bytes  {'verified' if record['ok'] else 'VERIFICATION FAILED'}")
    _report(record)
    if "copy" in record:
        click.echo(f"copy {record['copy']['id']}: {'verified' if record['copy']['ok'] else 'VERIFICATION FAILED'}")
        _report(record["copy"])


@backup_group.command("list")
@_COPY
def backup_list(copy: bool) -> None:
    """The backups, newest first, with their last verification."""
    from . import backup

    app = _app()
    for b in backup.all_backups(app, copy):
        v = b.verification
        state = "not verified" if v is None else ("verified " if v["ok"] else "FAILED ") + v["at"]
        click.echo(f"{b.id}  {b.rows:>8} rows  {b.size:>12} bytes  {state}")


@backup_group.command("verify")
@click.argument("backup_id")
@_COPY
def backup_verify(backup_id: str, copy: bool) -> None:
    """Check every part's hash and the manifest's signature, then a trial restore."""
    from . import backup

    app = _app()
    bar = _Bar()
    with app.test_request_context():
        try:
            record = backup.verify(app, backup.get(app, backup_id, copy), bar)
        except backup.BackupError as e:
            bar.end()
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        bar.end()
    click.echo(f"{backup_id}: {'verified' if record['ok'] else 'VERIFICATION FAILED'}")
    _report(record)


@backup_group.command("restore")
@click.argument("backup_id")
@click.option("--force", is_flag=True, help="Replace the rows of a database that is not empty.")
@click.option("--processes-stopped", is_flag=True,
              help="Every server and worker is stopped: clear the records they left (a live one still refuses).")
@_COPY
def backup_restore(backup_id: str, force: bool, processes_stopped: bool, copy: bool) -> None:
    """Return the platform to a backup (stop `inkless serve` and the workers first)."""
    from . import backup

    app = _app()
    bar = _Bar()
    with app.test_request_context():
        try:
            counts = backup.restore(app, backup.get(app, backup_id, copy), force=force,
                                    processes_stopped=processes_stopped, progress=bar)
        except backup.BackupError as e:
            bar.end()
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        bar.end()
    click.echo(f"restored {backup_id}: {sum(counts.values())} rows in {len(counts)} tables")


@main.group("audit")
def audit_group() -> None:
    """The audit log: verify the chain, sign a checkpoint, rotate its key (service/audit_chain.py), review it for anomalies (R-SEC-4)."""


@audit_group.command("verify")
@click.option("--from", "from_id", type=int, default=None, help="Start at this event (trusting its link backwards).")
def audit_verify(from_id: int | None) -> None:
    """Check every event's MAC and link and the tail against the newest checkpoint; exit status 1
    naming the first bad event or the missing tail."""
    from . import audit_chain

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            verdict = audit_chain.verify_platform(app, s, from_id)
        finally:
            s.close()
    if not verdict.ok:
        click.echo(f"audit chain BROKEN: {verdict.detail}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {verdict.detail}")


@audit_group.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's head now and write it to the checkpoint files."""
    from . import audit_chain

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            body = audit_chain.write_checkpoint(app, s)
        finally:
            s.close()
    paths = ", ".join(str(p) for p in audit_chain.checkpoint_paths(app))
    click.echo(f"checkpoint at event {body['last_id']} ({body['rows']} events) written to {paths}")


@audit_group.command("rotate-key")
def audit_rotate_key() -> None:
    """Make a new audit key current (older keys stay: they verify older events), then a checkpoint."""
    from . import audit_chain

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            kid = audit_chain.rotate_key(app, s)
            s.commit()
            audit_chain.write_checkpoint(app, s)
        except audit_chain.ChainError as e:
            raise click.ClickException(str(e)) from None
        finally:
            s.close()
    click.echo(f"audit key {kid} is current")


def _report(record: dict) -> None:
    from .backup import problem_text

    for problem in record["problems"]:
        click.echo(f"  {problem_text(problem)}", err=True)
    if not record["ok"]:
        sys.exit(1)


@audit_group.command("review")
@click.option("--since", help="A day (2026-12-03) or a moment; default: the last day.")
@click.option("--until", help="A day (inclusive) or a moment (exclusive); default: now.")
def audit_review(since: str | None, until: str | None) -> None:
    """Run the anomaly review now (it also runs every night) and list what it found."""
    from . import anomaly, audit_log
    from .errors import ApiError

    app = _app()
    with app.test_request_context():
        s = _session(app)
        try:
            window = audit_log.parse_filters({"since": since, "until": until})
            made = anomaly.review(s, None, window.since, window.until)
            s.commit()
            for finding in made:
                click.echo(f"#{finding.id} {anomaly.rule_name(finding.rule)}: {anomaly.describe(finding)}")
            click.echo(f"{len(made)} new findings")
        except ApiError as e:
            click.echo(f"error: {e.message}", err=True)
            for d in e.details or []:
                click.echo(f"  {d.get('field')}: {d.get('message')}", err=True)
            sys.exit(1)
        finally:
            s.close()


if __name__ == "__main__":
    main()
