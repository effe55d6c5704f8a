"""A year of data behind the dashboards: how fast are the overview, element-statistics and
indicator queries with 100,000 instances and 1,000,000 history rows? (R-WF-4, R-SUP-3)

    python bench/dashboards.py                                    # SQLite, scratch file /tmp/inkless_bench.db
    python bench/dashboards.py --database-url postgresql://postgres@127.0.0.1:5432/test
        # PostgreSQL: (re)creates the database `inkless_bench` on that server and works only there
    python bench/dashboards.py --instances 10000 --runs 5          # smaller, for a quick look
    python bench/dashboards.py --reuse                             # time again without regenerating
    python bench/dashboards.py --instances 20000 --figures         # the four indicators per department
        # and quarter of the generated year, each beside the count of its drill-down records

Generation (SQLAlchemy Core bulk inserts, schema made by the product's own migrations): 10
departments × 50 users; 5 processes × 2 versions (v2 deployed after six months); instances spread
evenly over the 12 months before 2026-11-27, 5 % of the newest still running with one open task;
each instance walks start → register → fill → check → review (approval: approve 70 %, return 20 %, reject
10 %; a return loops back to fill) → sign (due date) → notify → archive → end, with exponential
task times; about 10 history rows per instance. 3 % of the `sign` tasks were flagged overdue first
(audit `task_overdue`), some sign-in failure bursts and sandbox refusals make security incidents.

Timed (median of --runs after one warm-up, each in a fresh session):
  overview    open tasks of one process grouped by element (count, overdue)
  elements    service.analytics.element_stats for one process, all versions, one quarter
  indicators  service.procedures.indicators.compute for one quarter, and for one month (what a
              snapshot refresh costs), and what the dashboard reads: service.analytics.indicators
              and .trend served from the snapshots
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import create_app  # noqa: E402
from service.config import Config  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import (  # noqa: E402
    AuditEvent,
    Department,
    Deployment,
    DeploymentFile,
    InstanceStep,
    Notification,
    OpenTask,
    ProcessDefinition,
    ProcessInstance,
    User,
)

END = datetime(2026, 11, 27, tzinfo=UTC)
START = END - timedelta(days=365)
PROCESSES = ["leave", "purchase", "contract", "seal", "travel"]
DEPARTMENTS = 10
USERS_PER_DEPARTMENT = 50
BATCH = 20_000
# element id → (kind, mean seconds ready → done, mean seconds ready → claimed or None if never claimed)
USER_TASKS = {"fill": (900, None), "check": (4 * 3600, 1800), "review": (20 * 3600, 3 * 3600),
              "sign": (8 * 3600, 3600)}


def diagram(key: str) -> str:
    tasks = "".join(
        f'<bpmn:userTask id="{e}" name="{e}"><bpmn:extensionElements><spiffworkflow:properties>'
        + ('<spiffworkflow:property name="approval" value="true" />' if e == "review" else "")
        + ('<spiffworkflow:property name="due" value="&quot;P1D&quot;" />' if e == "sign" else "")
        + "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>" for e in USER_TASKS)
    return ('<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
            'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">'
            f'<bpmn:process id="{key}" isExecutable="true">{tasks}</bpmn:process></bpmn:definitions>')


def _pg_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def prepare_database(url: str | None, sqlite_path: Path, reuse: bool) -> str:
    """A fresh database made by the migrations: the SQLite file, or `inkless_bench` on the server."""
    if not url:
        if not reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        bench_url = f"sqlite:///{sqlite_path}"
    else:
        server = make_url(_pg_url(url))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            exists = c.scalar(text("SELECT 1 FROM pg_database WHERE datname = 'inkless_bench'"))
            if exists and not reuse:
                c.execute(text("DROP DATABASE inkless_bench"))
            if not exists or not reuse:
                c.execute(text("CREATE DATABASE inkless_bench"))
        admin.dispose()
        bench_url = server.set(database="inkless_bench").render_as_string(hide_password=False)
    if not reuse:
        engine = create_engine(bench_url)
        upgrade(engine)
        engine.dispose()
    return bench_url


def generate(engine, instances: int, seed: int = 7) -> dict:
    rnd = random.Random(seed)
    counts = {"instances": 0, "steps": 0, "open_tasks": 0, "audit_events": 0}
    with engine.begin() as c:
        departments = []
        for d in range(DEPARTMENTS):
            departments.append(c.execute(insert(Department).values(code=f"D{d:02d}", name=f"部门{d:02d}")
                                         .returning(Department.id)).scalar_one())
        users = []
        rows = [{"username": f"u{d:02d}_{i:02d}", "full_name": f"用户{d}-{i}", "password_hash": "x",
                 "department_id": departments[d], "role": "user", "active": True, "must_change_password": False,
                 "created_at": START - timedelta(days=30)} for d in range(DEPARTMENTS)
                for i in range(USERS_PER_DEPARTMENT)]
        c.execute(insert(User), rows)
        users = c.execute(select(User.id, User.department_id).order_by(User.id)).all()
        definitions = {}  # (key, version) → (definition id, deployment id)
        for key in PROCESSES:
            for version, deployed in ((1, START - timedelta(days=1)), (2, START + timedelta(days=182))):
                deployment = c.execute(insert(Deployment).values(deployed_at=deployed)
                                       .returning(Deployment.id)).scalar_one()
                c.execute(insert(DeploymentFile).values(deployment_id=deployment, name=f"{key}.bpmn", kind="bpmn",
                                                        content=diagram(key)))
                definition = c.execute(insert(ProcessDefinition).values(
                    key=key, version=version, name=key, description="", file=f"{key}.bpmn",
                    deployment_id=deployment, deployed_at=deployed).returning(ProcessDefinition.id)).scalar_one()
                definitions[(key, version)] = definition

    span = (END - START).total_seconds()
    running_from = END - timedelta(seconds=span * 0.05)
    instance_rows, step_rows, open_rows, audit_rows, notice_rows = [], [], [], [], []
    next_instance = 1

    def flush(final: bool = False) -> None:
        nonlocal instance_rows, step_rows, open_rows, audit_rows, notice_rows
        if not final and len(step_rows) < BATCH:
            return
        with engine.begin() as c:
            if instance_rows:
                c.execute(insert(ProcessInstance), instance_rows)
            if step_rows:
                c.execute(insert(InstanceStep), step_rows)
            if open_rows:
                c.execute(insert(OpenTask), open_rows)
            if audit_rows:
                c.execute(insert(AuditEvent), audit_rows)
            if notice_rows:
                c.execute(insert(Notification), notice_rows)
        counts["instances"] += len(instance_rows)
        counts["steps"] += len(step_rows)
        counts["open_tasks"] += len(open_rows)
        counts["audit_events"] += len(audit_rows)
        instance_rows, step_rows, open_rows, audit_rows, notice_rows = [], [], [], [], []

    for n in range(instances):
        started = START + timedelta(seconds=span * n / instances)
        key = PROCESSES[n % len(PROCESSES)]
        version = 2 if started >= START + timedelta(days=182) else 1
        definition = definitions[(key, version)]
        starter_id, department_id = users[rnd.randrange(len(users))]
        instance_id = next_instance
        next_instance += 1
        clock = started
        running = started >= running_from
        path = ["start", "register", "fill", "check", "review"]
        decisions = []
        while True:
            roll = rnd.random()
            decision = "approve" if roll < 0.7 else "return" if roll < 0.9 else "reject"
            decisions.append(decision)
            if decision != "return" or len(decisions) >= 3:
                break
            path += ["gw", "fill", "review"]
        path += ["gw"] + (["sign", "notify", "archive"] if decisions[-1] == "approve" else []) + ["end"]
        if running:
            path = path[:rnd.randrange(2, len(path) - 1)]
        review_no = 0
        incidents = []
        for element in path:
            task_id = str(uuid.uuid4())
            row = {"instance_id": instance_id, "definition_id": definition, "element_id": element, "name": element,
                   "kind": "UserTask" if element in USER_TASKS else "ScriptTask", "task_id": task_id,
                   "user_id": None, "started_at": None, "claimed_at": None, "decision": None,
                   "duration_s": None, "wait_s": None}
            if element in USER_TASKS:
                mean, wait = USER_TASKS[element]
                ready = clock
                clock = clock + timedelta(seconds=rnd.expovariate(1 / mean))
                row.update(user_id=users[rnd.randrange(len(users))][0], started_at=ready)
                if wait and rnd.random() < 0.6:
                    row["claimed_at"] = min(clock, ready + timedelta(seconds=rnd.expovariate(1 / wait)))
                    row["wait_s"] = (row["claimed_at"] - ready).total_seconds()
                row["duration_s"] = (clock - ready).total_seconds()
                if element == "review":
                    row["decision"] = decisions[min(review_no, len(decisions) - 1)]
                    review_no += 1
                if element == "sign" and rnd.random() < 0.03:
                    audit_rows.append(_audit(ready + timedelta(days=1), "task_overdue", "task", task_id,
                                             {"instance": instance_id, "element": "sign"}))
            else:
                clock = clock + timedelta(seconds=1)
            row["completed_at"] = clock
            step_rows.append(row)
        if running:
            task_id = str(uuid.uuid4())
            element = rnd.choice(list(USER_TASKS))
            overdue = element == "sign" and rnd.random() < 0.2
            open_rows.append({"id": task_id, "instance_id": instance_id, "process_key": key, "element_id": element,
                              "name": element, "lane": None, "form": None, "ui_form": None,
                              "approval": element == "review", "instructions": "", "assignee_id": None,
                              "created_at": clock, "due_at": clock + timedelta(days=1) if element == "sign" else None,
                              "overdue": overdue, "data": {}})
            if overdue:
                audit_rows.append(_audit(clock + timedelta(days=1), "task_overdue", "task", task_id,
                                         {"instance": instance_id, "element": element}))
                notice_rows.append({"user_id": starter_id, "kind": "overdue", "title": element, "body": "",
                                    "instance_id": instance_id, "task_id": task_id, "created_at": clock})
        if rnd.random() < 0.002:
            incidents.append({"element": "notify", "kind": "forbidden", "line": 1, "message": "import",
                              "at": (started + timedelta(hours=1)).isoformat()})
        instance_rows.append({
            "id": instance_id, "definition_id": definition, "process_key": key, "version": version,
            "business_key": None, "state": "running" if running else "completed", "started_by": starter_id,
            "department_id": department_id, "started_at": started, "ended_at": None if running else clock,
            "engine_state": "{}", "serializer_version": "bench", "lock_version": 1, "active_elements": [],
            "incidents": incidents, "waiting_messages": [], "next_timer_at": None})
        if rnd.random() < 0.01:  # a sign-in failure burst now and then
            user = users[rnd.randrange(len(users))]
            for i in range(5):
                audit_rows.append(_audit(started + timedelta(minutes=i), "login_failed", "user",
                                         f"u{(user[1] - 1) % DEPARTMENTS:02d}_00", None))
        flush()
    flush(final=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as c:
            c.execute(text("SELECT setval(pg_get_serial_sequence('process_instances', 'id'), "
                           "(SELECT max(id) FROM process_instances))"))
    with engine.begin() as c:
        c.execute(text("ANALYZE"))
    return counts


def _audit(at, action, object_type, object_id, detail) -> dict:
    return {"at": at, "actor_id": None, "action": action, "object_type": object_type, "object_id": object_id,
            "detail": detail or {}, "client_addr": None, "prev_hash": "0" * 64, "hash": "0" * 64}


def timed(factory, runs: int, work) -> tuple[list[float], list[float]]:
    """Wall-clock and this process's CPU milliseconds of each run after a warm-up run. On a shared
    machine the wall clock includes waiting for a CPU; the CPU time does not (but for PostgreSQL it
    leaves out the server's work)."""
    wall, cpu = [], []
    for i in range(runs + 1):
        s = factory()
        try:
            began, began_cpu = time.perf_counter(), time.process_time()
            work(s)
            elapsed, elapsed_cpu = (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000
        finally:
            s.close()
        if i:  # the first run warms caches
            wall.append(elapsed)
            cpu.append(elapsed_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="postgresql://… server; omitted: SQLite")
    parser.add_argument("--sqlite", default="/tmp/inkless_bench.db", type=Path)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--reuse", action="store_true", help="time the existing data, do not regenerate")
    parser.add_argument("--figures", action="store_true",
                        help="print the indicators per department and quarter with their drill-downs, no timing")
    args = parser.parse_args()

    url = prepare_database(args.database_url, args.sqlite, args.reuse)
    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "inkless_bench_data"
    app = create_app(Config.from_env(data_dir=data_dir, database_url=url, secret_key="bench"))
    engine, factory = app.extensions["inkless.engine"], app.extensions["inkless.db"]
    print(f"database: {engine.dialect.name} {engine.url.render_as_string(hide_password=True)}")
    if not args.reuse:
        began = time.perf_counter()
        counts = generate(engine, args.instances)
        print(f"generated {json.dumps(counts)} in {time.perf_counter() - began:.0f} s")
    with factory() as s:
        print("rows: " + ", ".join(f"{m.__tablename__} {s.scalar(select(func.count()).select_from(m)):,}"
                                   for m in (ProcessInstance, InstanceStep, OpenTask, AuditEvent)))

    from service import analytics
    from service.procedures.indicators import compute, quarter

    if args.figures:
        with app.test_request_context("/bench"):
            print_figures(factory)
        engine.dispose()
        return
    q = quarter("2026-Q3")
    month = analytics.month("2026-08")
    cases = {
        "overview: open tasks by element, one process": lambda s: s.execute(
            select(OpenTask.element_id, func.count(), func.sum(func.cast(OpenTask.overdue, type_=_int())))
            .where(OpenTask.process_key == "purchase").group_by(OpenTask.element_id)).all(),
        "elements: statistics of one process, all versions, 2026-Q3": lambda s: analytics.element_stats(
            s, "purchase", None, q, None),
        "elements: one department's view, 2026-Q3": lambda s: analytics.element_stats(
            s, "purchase", None, q, s.scalar(select(Department.id).where(Department.code == "D03"))),
        "indicators computed: all departments and people, 2026-Q3": lambda s: compute(s, q.start, q.end),
        "indicators computed: all departments and people, 2026-08": lambda s: compute(s, month.start, month.end),
        "indicators served (snapshot), 2026-Q3": lambda s: analytics.indicators(s, q, None),
        "indicators served (snapshot), 2026-08, one department": lambda s: analytics.indicators(
            s, month, s.scalar(select(Department.id).where(Department.code == "D03"))),
        "trend served: 12 months of snapshots": lambda s: analytics.trend(s, "month", 12, None),
    }
    with app.test_request_context("/bench"):
        # What the scheduler's snapshot job does in the background (timed once, not per request).
        with factory() as s:
            began = time.perf_counter()
            analytics.refresh_snapshots(s, limit=16)
            print(f"snapshots refreshed (16 periods) in {time.perf_counter() - began:.1f} s")
        print(f"load average before timing: {os.getloadavg()[0]:.1f}")
        for name, work in cases.items():
            wall, cpu = timed(factory, args.runs, work)
            print(f"{name:58s} median {statistics.median(wall):8.1f} ms  min {min(wall):8.1f}  "
                  f"max {max(wall):8.1f}  | client CPU median {statistics.median(cpu):8.1f} ms")
        print(f"load average after timing: {os.getloadavg()[0]:.1f}")
    engine.dispose()


QUARTERS = ("2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")


def print_figures(factory) -> None:
    """The four indicators per department and quarter, and for each its drill-down records:
    people (usage's population), due (timeliness: tasks with a due date completed in the quarter),
    submissions (approval pass rate), incidents (security incident rate)."""
    from service import analytics
    from service.procedures.indicators import compute, quarter

    def pct(v):
        return "   —  " if v is None else f"{100 * v:5.1f}%"

    print(f"{'quarter':<8} {'dept':<5} {'usage':>7} {'people':>13} {'timely':>7} {'due':>13} {'passed':>7} "
          f"{'first':>7} {'submitted':>13} {'incid./100':>10} {'incidents':>11}")
    shown = matched = 0
    with factory() as s:
        departments = dict(s.execute(select(Department.code, Department.id)).all())
        for label in QUARTERS:
            q = quarter(label)
            figures = compute(s, q.start, q.end).departments
            for code in sorted(figures):
                d = figures[code]
                if not d.get("active_users"):
                    continue
                drills = {kind: len(analytics.records(s, kind, q, departments[code], limit=1_000_000))
                          for kind in ("people", "due", "submissions", "incidents")}
                # Timeliness also counts the tasks flagged overdue and still open at the end: the
                # "late" drill-down lists those (no completion) beside the late completions.
                drills["due"] += sum(1 for r in analytics.records(s, "late", q, departments[code], limit=1_000_000)
                                     if r["completed_at"] is None)
                pairs = [("people", d["active_users"]), ("due", d["due_tasks"]), ("submissions", d["submissions"]),
                         ("incidents", d["security_incidents"])]
                shown += len(pairs)
                matched += sum(1 for kind, n in pairs if drills[kind] == n)
                rate = d["security_incident_rate"]
                print(f"{label:<8} {code:<5} {pct(d['usage_rate']):>7} {d['active_users']:>6}/{drills['people']:<6} "
                      f"{pct(d['timeliness_rate']):>7} {d['due_tasks']:>6}/{drills['due']:<6} "
                      f"{pct(d['approval_pass_rate']):>7} {pct(d['first_pass_rate']):>7} "
                      f"{d['submissions']:>6}/{drills['submissions']:<6} "
                      f"{'—' if rate is None else f'{rate:.1f}':>10} {d['security_incidents']:>5}/{drills['incidents']:<5}")
    print(f"(figure/records: the count behind the figure and the drill-down's records; {matched} of {shown} equal)")


def _int():
    from sqlalchemy import Integer

    return Integer


if __name__ == "__main__":
    main()
