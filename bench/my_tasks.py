"""Time "my tasks" (the task list's count and first page) on a large open-task table, old query vs new.

    python bench/my_tasks.py                              # 50,000 open tasks, 2,000 users, SQLite
    python bench/my_tasks.py --rows 1000000 --users 10000 # the figure of issue 16
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/my_tasks.py --rows 1000000 --users 10000

The schema is the product's (its migrations, in a fresh SQLite file or a fresh PostgreSQL schema that
is dropped at the end). The rows are bulk-loaded, not made through the API (a million instances
would take hours): `--rows` open tasks on rows/2 running instances of 5 processes, `--users` users
in rows/1000 groups (at least 10) of which each user but the first is in one. 40 % of the tasks are
assigned to a random user (and were offered to a group before), 60 % are unassigned and offered to a
group, a fifth of those also to one user by name; the first 0.75 % (7,500 at a million) go to the
group "big". 30 % carry a deadline. On PostgreSQL the tables are VACUUM ANALYZEd as autovacuum would;
SQLite gets no ANALYZE (the product never runs one).

Two people are timed, each `--repeat` times after a warm-up: "few" (user 1, in no group: the tasks
assigned to them and a few offered to them by name) and "member" (user 2, in "big" and one other
group: thousands). Each call is what GET /api/v1/tasks does — a count and a page of 50 — with the
query before issue 16 (`assignee = me OR (no assignee AND id IN candidates)`, full COUNT, OFFSET)
and with service/inbox.py's (a branch per group of mine read in page order from the candidates'
indexes, count capped at 1,000, keyset page); the new query also times the second page by its
cursor, after checking that its first two pages are the old query's. Prints p50/p95 in ms.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, or_, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from service import inbox  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import NO_DEADLINE, OpenTask, ProcessDefinition, ProcessInstance, TaskCandidate, User  # noqa: E402

PAGE = 50
NOW = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)


def old_tasks_for(user: User):
    """service/inbox.py before issue 16, as it was."""
    offered = select(TaskCandidate.task_id).where(
        or_(TaskCandidate.user_id == user.id, TaskCandidate.group_code.in_(user.groups or {""})))
    unclaimed = OpenTask.assignee_id.is_(None) & OpenTask.id.in_(offered)
    return (select(OpenTask).join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .where(or_(OpenTask.assignee_id == user.id, unclaimed))
            .order_by(OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.created_at, OpenTask.id))


def old_call(s: Session, user: User) -> int:
    query = old_tasks_for(user)
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    s.scalars(query.limit(PAGE).offset(0)).all()
    return total


def new_call(s: Session, user: User, cursor: str | None = None) -> tuple[int, str | None]:
    query = inbox.my_tasks(user)
    total = inbox.count(s, query)
    rows = s.scalars(inbox.page(query, cursor, PAGE + 1)).all()
    return total, (inbox.cursor_of(rows[PAGE - 1]) if len(rows) > PAGE else None)


# --- data -------------------------------------------------------------------------------------------

def _stamp(moment: datetime, sqlite: bool) -> str:
    # On SQLite, the text SQLAlchemy writes: the keyset cursors compare these strings with its own.
    return moment.replace(tzinfo=None).isoformat(" ", timespec="microseconds") if sqlite else moment.isoformat()


def generate(rows: int, users: int, sqlite: bool, seed: int = 16):
    """Table name → (columns, row tuples), in insert order."""
    rnd = random.Random(seed)
    t = lambda moment: _stamp(moment, sqlite)  # noqa: E731
    yes, no = (1, 0) if sqlite else ("t", "f")
    groups = [f"g{n}" for n in range(max(10, rows // 1000))]
    data: dict[str, tuple[list[str], list[tuple]]] = {}
    data["departments"] = (["id", "code", "name"], [(1, "HQ", "总部")])
    data["users"] = (["id", "username", "full_name", "password_hash", "department_id", "role", "active",
                      "must_change_password", "created_at"],
                     [(u, f"user{u}", f"用户{u}", "-", 1, "user", yes, no, t(NOW)) for u in range(1, users + 1)])
    data["groups"] = (["code", "name"], [(g, g) for g in ["big", *groups]])
    links = [(u, groups[u % len(groups)]) for u in range(2, users + 1)]
    links += [(u, "big") for u in range(2, min(users, 52) + 1)]
    data["user_groups"] = (["user_id", "group_code"], links)
    data["deployments"] = (["id", "deployed_at"], [(1, t(NOW))])
    data["process_definitions"] = (["id", "key", "version", "name", "description", "file", "deployment_id",
                                    "deployed_at"],
                                   [(d, f"p{d}", 1, f"流程{d}", "", f"p{d}.bpmn", 1, t(NOW)) for d in range(1, 6)])
    instances = max(1, rows // 2)
    data["process_instances"] = (
        ["id", "definition_id", "process_key", "version", "state", "started_by", "started_at", "engine_state",
         "serializer_version", "lock_version", "active_elements", "incidents", "waiting_messages"],
        [(i, i % 5 + 1, f"p{i % 5 + 1}", 1, "running", rnd.randint(1, users),
          t(NOW - timedelta(minutes=rnd.randint(0, 90 * 1440))), "{}", "1", 1, "[]", "[]", "[]")
         for i in range(1, instances + 1)])
    tasks, candidates = [], []
    no_deadline = t(NO_DEADLINE)
    big = round(rows * 0.0075)
    for n in range(rows):
        task_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        instance = rnd.randint(1, instances)
        created = NOW - timedelta(minutes=rnd.randint(0, 90 * 1440), seconds=rnd.randint(0, 59))
        due = t(NOW + timedelta(hours=rnd.randint(-720, 720))) if rnd.random() < 0.3 else None
        key = (due or no_deadline, t(created))  # the candidates' copy of the sort key
        group = "big" if n < big else rnd.choice(groups)
        assignee = rnd.randint(1, users) if n >= big and rnd.random() < 0.4 else None
        tasks.append((task_id, instance, f"p{instance % 5 + 1}", "review", "审核", yes if n % 2 else no, "",
                      assignee, t(created), due, no, "{}"))
        candidates.append((task_id, None, group, *key))
        if assignee is None and rnd.random() < 0.2:
            candidates.append((task_id, rnd.randint(1, users), None, *key))
    data["open_tasks"] = (["id", "instance_id", "process_key", "element_id", "name", "approval", "instructions",
                           "assignee_id", "created_at", "due_at", "overdue", "data"], tasks)
    data["task_candidates"] = (["task_id", "user_id", "group_code", "due_key", "created_at"], candidates)
    return data


def load(engine, data) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, (columns, rows) in data.items():
            if engine.dialect.name == "sqlite":
                marks = ", ".join("?" for _ in columns)
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            else:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        raw.commit()
        if engine.dialect.name != "sqlite":
            # What autovacuum does to a loaded table: statistics, and the visibility map that lets
            # index-only scans skip the table.
            driver = raw.driver_connection
            driver.autocommit = True
            driver.execute("VACUUM ANALYZE")
            driver.autocommit = False
    finally:
        raw.close()


# --- timing -----------------------------------------------------------------------------------------

def timed(call, repeat: int) -> tuple[float, float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def _people(s: Session) -> list[tuple[str, User]]:
    people = [("few", s.get(User, 1)), ("member", s.get(User, 2))]
    for _label, user in people:
        _ = user.groups
    return people


def measure(engine, repeat: int) -> list[tuple[str, str, int, float, float]]:
    """The new query on the new indexes, then the old query on the indexes it had (those of
    migrations 0012_serving_inbox_indexes and 0017_candidate_page_keys swapped for the ones before)."""
    out = []
    with Session(engine) as s:
        for label, user in _people(s):
            total, cursor = new_call(s, user)
            # The first two pages (one if there is no second) are the old query's rows.
            shown = [t.id for c in dict.fromkeys([None, cursor])
                     for t in s.scalars(inbox.page(inbox.my_tasks(user), c, PAGE))]
            assert shown == [t.id for t in s.scalars(old_tasks_for(user).limit(len(shown)))], label
            out.append(("new: capped count + page 1", label, total, *timed(lambda u=user: new_call(s, u), repeat)))
            if cursor:
                out.append(("new: capped count + page 2 (keyset)", label, total,
                            *timed(lambda u=user, c=cursor: new_call(s, u, c), repeat)))
        s.rollback()
    _indexes_before_issue_16(engine)
    with Session(engine) as s:
        for label, user in _people(s):
            total = old_call(s, user)
            out.append(("old: count + page 1 (old indexes)", label, total,
                        *timed(lambda u=user: old_call(s, u), repeat)))
        s.rollback()
    return out


def _indexes_before_issue_16(engine) -> None:
    # The indexes are swapped by hand: rolling the migrations back would also drop columns added
    # since (open_tasks.instructions_en) that the model, and so the old query, reads.
    with engine.begin() as connection:
        for name in ("ix_open_tasks_assignee_order", "ix_open_tasks_page", "ix_task_candidates_user_page",
                     "ix_task_candidates_group_page"):
            connection.execute(text(f"DROP INDEX {name}"))
        connection.execute(text("CREATE INDEX ix_open_tasks_assignee_id ON open_tasks (assignee_id)"))
        connection.execute(text("CREATE INDEX ix_task_candidates_user ON task_candidates (user_id)"))
        connection.execute(text("CREATE INDEX ix_task_candidates_group ON task_candidates (group_code)"))
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE open_tasks"))
            connection.execute(text("ANALYZE task_candidates"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    pg = os.environ.get("DATABASE_URL", "").startswith("postgres")
    tmp = tempfile.TemporaryDirectory()
    schema = f"bench_my_tasks_{uuid.uuid4().hex[:8]}"
    if pg:
        base = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
        admin = create_engine(base)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
    else:
        engine = create_engine(f"sqlite:///{Path(tmp.name) / 'bench.db'}")
    try:
        began = time.monotonic()
        upgrade(engine)
        load(engine, generate(args.rows, args.users, sqlite=not pg))
        print(f"{engine.dialect.name}: {args.rows:,} open tasks, {args.users:,} users, loaded in "
              f"{time.monotonic() - began:.0f} s; {args.repeat} calls each, page of {PAGE}")
        print(f"{'query':38s} {'user':7s} {'tasks':>7s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for name, label, total, p50, p95 in measure(engine, args.repeat):
            print(f"{name:38s} {label:7s} {total:>7,} {p50:8.1f} {p95:8.1f}")
    finally:
        engine.dispose()
        if pg:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
