"""The five-step approval as the platform ages: with 0, 300,000 and 1,000,000 notifications already
sent (issue 16, R-WF-2).

    python bench/platform_age.py               # SQLite (a fresh data dir)
    python bench/platform_age.py --postgres    # a fresh schema in postgresql://postgres@127.0.0.1:5432/test

bench/complete_task.py ages one instance (its history); this ages the platform around it. Every new
task notifies its performers, so the notifications table is the one that grows with everything the
platform has done, and a completion marks its task's notifications read. `inkless serve` as in
bench/side_by_side.py (one gthread web process, one keep-alive client, `Prefer: return=minimal`);
between rounds the table is filled straight in the database up to the next size, one notice in
twenty left unread, each for a task of its own (as a year of real notices would be), then
ANALYZEd; each round times `--five` five-step instances. Flat means the rate and the medians do
not move with the size.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete_task import PG_BASE, USERNAME, pg_drop_schema, stop_server  # noqa: E402
from side_by_side import INKLESS, _pg_url, five_step_rate, server_cpu_seconds, start_inkless  # noqa: E402

_SQLITE_FILL = """
WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last)
INSERT INTO notifications (user_id, kind, title, body, task_id, created_at, read_at)
SELECT :user, 'task', '审批', '', printf('%08d-0000-4000-8000-000000000000', i), '2026-01-01 00:00:00.000000',
       CASE WHEN i % 20 = 0 THEN NULL ELSE '2026-01-02 00:00:00.000000' END FROM n
"""
_PG_FILL = """
INSERT INTO notifications (user_id, kind, title, body, task_id, created_at, read_at)
SELECT %(user)s, 'task', '审批', '', lpad(i::text, 8, '0') || '-0000-4000-8000-000000000000',
       timestamptz '2026-01-01 00:00+00', CASE WHEN i %% 20 = 0 THEN NULL ELSE timestamptz '2026-01-02 00:00+00' END
FROM generate_series(%(first)s::integer, %(last)s::integer) AS i
"""


class Filler:
    """Adds notifications in the platform's database, behind the server's back."""

    def __init__(self, work: Path, schema: str | None):
        if schema:
            import psycopg

            self.conn = psycopg.connect(PG_BASE, autocommit=True, options=f"-csearch_path={schema}")
        else:
            self.conn = sqlite3.connect(next((work / "inkless").glob("*.db")), timeout=30, isolation_level=None)
        self.pg = schema is not None
        self.user = self._one("SELECT id FROM users WHERE username = " + ("%s" if self.pg else "?"), (USERNAME,))
        self.count = self._one("SELECT count(*) FROM notifications", ())

    def _one(self, sql: str, params):
        return self.conn.execute(sql, params).fetchone()[0]

    def fill_to(self, size: int) -> None:
        if size <= self.count:
            return
        params = {"user": self.user, "first": self.count + 1, "last": size}
        self.conn.execute(_PG_FILL if self.pg else _SQLITE_FILL, params)
        self.conn.execute("ANALYZE notifications")
        self.count = size

    def close(self) -> None:
        self.conn.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[0, 300_000, 1_000_000])
    ap.add_argument("--five", type=int, default=30, help="five-step instances timed at each size")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="inkless-age-"))
    admin = schema = proc = filler = None
    rows = []
    try:
        url = None
        if args.postgres:
            import psycopg

            admin = psycopg.connect(PG_BASE, autocommit=True)
            schema = f"bench_age_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE SCHEMA "{schema}"')
            url = _pg_url(schema)
        proc, c = start_inkless(work, url)
        five_step_rate(c, INKLESS, 3)  # warm-up: imports, caches, the script workers
        filler = Filler(work, schema)
        for size in args.sizes:
            filler.fill_to(size)
            # A fill longer than the server's keep-alive (5 s) ends the client's connection.
            c.conn.close()
            five_step_rate(c, INKLESS, 2)  # the server's first statements after the fill
            cpu = server_cpu_seconds(proc.pid)
            rate, parts = five_step_rate(c, INKLESS, args.five)
            rows.append((filler.count, rate, parts, (server_cpu_seconds(proc.pid) - cpu) / args.five * 1000))
            print(f"  {filler.count:,} notifications done", file=sys.stderr)
        c.conn.close()
    finally:
        if filler is not None:
            filler.close()
        if proc is not None:
            stop_server(proc)
        if schema:
            pg_drop_schema(admin, schema)
        if admin is not None:
            admin.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"database: {'postgresql' if args.postgres else 'sqlite'}   five-step n={args.five} per size")
    print(f"{'notifications':>14}{'five-step /s':>14}{'complete ms':>13}{'list ms':>9}{'start ms':>10}{'server CPU ms':>15}")
    for count, rate, parts, cpu in rows:
        print(f"{count:>14,}{rate:>14.1f}{parts['complete']:>13.2f}{parts['list']:>9.2f}{parts['start']:>10.2f}{cpu:>15.1f}")
    first, last = rows[0], rows[-1]
    print(f"growth {first[0]:,}→{last[0]:,}: complete {last[2]['complete'] / first[2]['complete']:.2f}×, "
          f"rate {last[1] / first[1]:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
