"""Timers due all at once: how late they fire, with one worker and with two (issue 16, R-WF-2).

    python bench/timers.py                        # 10,000 timers due within 60 s, 1 then 2 workers, PostgreSQL
    python bench/timers.py --timers 2000 --sqlite # smaller, on SQLite (one writer at a time)

For each worker count, in a fresh PostgreSQL schema (or SQLite data dir): `inkless init`, a user,
`inkless deploy bench/timer_wait.bpmn` (start → timer at `fire_at` → end). Then `--timers`
instances are started through the service's own `instances.start` in this process (HTTP would add
minutes and nothing to measure), their `fire_at` spread evenly over `--window` seconds from a
moment after the last start. Then `--workers` × `inkless worker` (the product's default interval
unless `--interval`) fire them. Lateness of a timer = the instance's `ended_at` (the unit that
fired it committed) − its `fire_at`. Printed: lateness p50/p90/p99/max, fires per second while
they drain (fired / (last end − first due)), and how many instances fired more than once (must
be 0: the history holds the timer's step once per firing).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete_task import PG_BASE, ROOT, USERNAME, inkless_cmd, pct, pg_drop_schema, run_cli  # noqa: E402

BPMN = ROOT / "bench" / "timer_wait.bpmn"


def seed(n: int, window: float, lead: float, out: Path) -> None:
    """Start `n` instances in this process (env as the parent set it); write id → fire_at."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from service import create_app
    from service import instances as units
    from service.config import Config
    from service.models import User

    app = create_app(Config.from_env())
    factory = app.extensions["inkless.db"]
    t0 = datetime.now(timezone.utc) + timedelta(seconds=lead)
    fire: dict[int, str] = {}
    with app.test_request_context("/bench"):
        s = factory()
        user = s.scalar(select(User).where(User.username == USERNAME))
        for i in range(n):
            at = (t0 + timedelta(seconds=window * i / n)).isoformat()
            outcome = units.start(s, user, "bench_timer", data={"fire_at": at})
            s.commit()
            fire[outcome.instance.id] = at
        s.close()
    out.write_text(json.dumps(fire))


def run(args, workers: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="inkless-timers-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "INKLESS_SECRET_KEY")}
    env["INKLESS_DATA_DIR"] = str(work / "data")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    admin = schema = None
    procs: list[subprocess.Popen] = []
    try:
        if not args.sqlite:
            import psycopg

            admin = psycopg.connect(PG_BASE, autocommit=True)
            schema = f"bench_timers_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE SCHEMA "{schema}"')
            env["DATABASE_URL"] = f"{PG_BASE}?options=-csearch_path%3D{schema}&application_name={schema}"
        run_cli(env, "init")
        run_cli(env, "department", "create", "BENCH", "--name", "Benchmark")
        run_cli(env, "user", "create", "--username", USERNAME, "--password", "bench-password-7c1f", "--department", "BENCH")
        run_cli(env, "deploy", str(BPMN))
        fire_file = work / "fire.json"
        # The timers come due `lead` seconds after seeding starts: enough for the starts to finish.
        lead = args.timers * args.start_cost + 15
        t = time.monotonic()
        subprocess.run([sys.executable, __file__, "--seed", str(args.timers), str(args.window), str(lead),
                        str(fire_file)], env=env, cwd=ROOT, check=True, timeout=3600)
        seeded_s = time.monotonic() - t
        fire = {int(k): datetime.fromisoformat(v) for k, v in json.loads(fire_file.read_text()).items()}
        first_due = min(fire.values())
        already_due = sum(1 for v in fire.values() if v <= datetime.now(timezone.utc))
        cmd = inkless_cmd() + ["worker"] + (["--interval", str(args.interval)] if args.interval else [])
        for i in range(workers):
            log = open(work / f"worker{i}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        deadline = time.monotonic() + lead + args.window + args.max_wait
        ended = _ended(env, admin, schema, args.sqlite)
        while len(ended) < len(fire) and time.monotonic() < deadline:  # bounded by the deadline
            time.sleep(2)
            ended = _ended(env, admin, schema, args.sqlite)
        late = sorted((ended[i] - fire[i]).total_seconds() for i in ended if i in fire)
        fired_twice = _fired_twice(env, admin, schema, args.sqlite)
        last_end = max(ended.values()) if ended else first_due
        return {"workers": workers, "timers": len(fire), "fired": len(ended), "seed_s": seeded_s,
                "already_due_at_start": already_due, "p50": statistics.median(late) if late else None,
                "p90": pct(late, 0.9) if late else None, "p99": pct(late, 0.99) if late else None,
                "max": late[-1] if late else None,
                "fires_per_s": len(ended) / max((last_end - first_due).total_seconds(), 1e-9),
                "fired_twice": fired_twice}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, 9)
        if admin is not None:
            pg_drop_schema(admin, schema)
            admin.close()
        shutil.rmtree(work, ignore_errors=True)


def _query(env, admin, schema, sqlite: bool, sql: str) -> list[tuple]:
    if sqlite:
        import sqlite3

        con = sqlite3.connect(Path(env["INKLESS_DATA_DIR"]) / "inkless.db", timeout=30)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    admin.execute(f'SET search_path TO "{schema}"')
    try:
        return admin.execute(sql).fetchall()
    finally:
        admin.execute("SET search_path TO DEFAULT")


def _ended(env, admin, schema, sqlite: bool) -> dict[int, datetime]:
    rows = _query(env, admin, schema, sqlite, "SELECT id, ended_at FROM process_instances "
                  "WHERE process_key = 'bench_timer' AND ended_at IS NOT NULL")
    out = {}
    for i, at in rows:
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        out[i] = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return out


def _fired_twice(env, admin, schema, sqlite: bool) -> int:
    return len(_query(env, admin, schema, sqlite, "SELECT instance_id FROM instance_steps WHERE element_id = 'wait' "
                      "GROUP BY instance_id HAVING count(*) > 1"))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--seed"]:
        seed(int(argv[1]), float(argv[2]), float(argv[3]), Path(argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timers", type=int, default=10000)
    ap.add_argument("--window", type=float, default=60.0, help="the timers come due over this many seconds")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--interval", type=float, default=None, help="worker poll interval (default: the product's)")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--start-cost", type=float, default=0.012, help="seconds per start, to set the lead")
    ap.add_argument("--max-wait", type=float, default=600.0, help="give up this long after the last is due")
    args = ap.parse_args(argv)
    results = [run(args, int(w)) for w in args.workers.split(",")]
    print(f"database: {'sqlite' if args.sqlite else 'postgresql'}   {args.timers:,} timers due over "
          f"{args.window:g} s   worker interval: {args.interval or 'default'}")
    print(f"{'workers':>7} {'fired':>7} {'p50 s':>7} {'p90 s':>7} {'p99 s':>7} {'max s':>7} {'fires/s':>8} "
          f"{'twice':>6} {'due early':>9} {'seed s':>7}")
    for r in results:
        print(f"{r['workers']:>7} {r['fired']:>7} {r['p50']:>7.2f} {r['p90']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.2f} "
              f"{r['fires_per_s']:>8.1f} {r['fired_twice']:>6} {r['already_due_at_start']:>9} {r['seed_s']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
