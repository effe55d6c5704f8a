"""What logging reads costs per request (issue 15, R-SEC-4): the same reads timed with the read log
on and off, side by side.

    python bench/read_audit.py                  # SQLite in a fresh data directory
    python bench/read_audit.py --postgres       # PostgreSQL, a fresh schema of postgresql://postgres@127.0.0.1:5432/test
    python bench/read_audit.py --rounds 400

The real app in this process (Flask's test client: no network, so the figures are the server's own
work), on a migrated database with the built-in processes deployed and one account application
started. Each round times, in turn, with `Config.read_audit` on and off (interleaved, so both see
the same cache and the same database size):

    GET /api/v1/process-instances/<id>   (an instance read: one `records_read` row when on)
    GET /api/v1/tasks/<id>               (a task read)
    GET /api/v1/users                    (user records, one row for the page)

and reports median and 95th percentile per request, and the difference the log adds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-password-7c1f"


def make_app(data_dir: Path, postgres: bool):
    from sqlalchemy import create_engine, text

    from service import create_app, definitions, org
    from service.config import Config
    from service.migrate import upgrade

    url, schema = None, None
    if postgres:
        schema = f"bench_reads_{uuid.uuid4().hex[:8]}"
        with create_engine(PG_BASE).begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    cfg = Config.from_env(data_dir=data_dir, database_url=url, secret_key="bench", mfa_enforced=False,
                          ratelimit_enabled=False, session_cookie_secure=False)
    app = create_app(cfg)
    upgrade(app.extensions["inkless.engine"])
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org.ensure_groups(s)
        org.create_department(s, "OFFICE", "办公室")
        org.create_user(s, "bench_admin", PASSWORD, "OFFICE", "dept_admin")
        definitions.deploy_directory(s, cfg.process_models_dir, cfg.forms_dir)
        s.commit()
        s.close()
    return app, schema


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    with create_engine(PG_BASE).begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inkless-bench-reads-") as tmp:
        app, schema = make_app(Path(tmp), args.postgres)
        try:
            client = app.test_client()
            token = client.post("/api/v1/auth/token", json={"username": "bench_admin", "password": PASSWORD}).get_json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            instance = client.post("/api/v1/process-instances", json={"process_key": "account_application"},
                                   headers=headers).get_json()
            task = client.get("/api/v1/tasks", query_string={"instance_id": instance["id"]},
                              headers=headers).get_json()["items"][0]
            paths = {"instance": f"/api/v1/process-instances/{instance['id']}", "task": f"/api/v1/tasks/{task['id']}",
                     "users": "/api/v1/users"}
            cfg = app.config["INKLESS"]
            timings = {(name, on): [] for name in paths for on in (True, False)}
            for _warm in range(20):
                for path in paths.values():
                    client.get(path, headers=headers)
            for _round in range(args.rounds):
                for name, path in paths.items():
                    for on in (True, False):
                        cfg.read_audit = on
                        started = time.perf_counter()
                        response = client.get(path, headers=headers)
                        timings[(name, on)].append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, response.get_json()
            database = "PostgreSQL" if args.postgres else "SQLite"
            print(f"{database}, {args.rounds} rounds, milliseconds per request (in-process test client)")
            print(f"{'request':<10} {'log on p50':>11} {'p95':>7} {'log off p50':>12} {'p95':>7} {'cost p50':>9}")
            for name in paths:
                on, off = timings[(name, True)], timings[(name, False)]
                print(f"{name:<10} {statistics.median(on):>11.2f} {percentile(on, 0.95):>7.2f} "
                      f"{statistics.median(off):>12.2f} {percentile(off, 0.95):>7.2f} "
                      f"{statistics.median(on) - statistics.median(off):>+9.2f}")
        finally:
            app.extensions["inkless.engine"].dispose()
            if schema:
                drop_schema(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
