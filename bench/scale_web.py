"""Two web processes against one, on PostgreSQL, with concurrent clients (issue 16).

    python bench/scale_web.py                      # 1 then 2 web processes, 4 clients, 20 s each
    python bench/scale_web.py --clients 8 --seconds 30

For each web-process count, in a fresh PostgreSQL schema: `inkless init`, a department, a user,
the bench processes deployed (bench/side_by_side.py `start_inkless`), then `inkless serve --workers N` (gunicorn gthread, 8
threads each; with 2 processes the scheduler is left to workers, none of which is needed here).
`--clients` threads, each with its own keep-alive connection, carry five-step approvals to their
end (start, then 5 × list the instance's tasks and complete, `Prefer: return=minimal`) for
`--seconds` after a warm-up. Printed per count: completions per second, requests per second, the
median completion, and the server's CPU per completion (user + system time of the web processes,
read from /proc, over the timed window), so a 2-core machine's limit shows: the clients and
PostgreSQL share the same two cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete_task import (  # noqa: E402
    PG_BASE,
    Client,
    pg_drop_schema,
    stop_server,
)
from side_by_side import server_cpu_seconds, start_inkless  # noqa: E402

MINIMAL = {"Prefer": "return=minimal"}


def _client(port: int, token: str, stop: threading.Event, out: list) -> None:
    c = Client(port)
    c.token = token
    completions: list[float] = []
    requests = 0
    while not stop.is_set():
        status, body, _ = c.call("POST", "/api/v1/process-instances", {"process_key": "bench_five_step"}, MINIMAL)
        assert status == 201, (status, body)
        requests += 1
        for _step in range(5):
            status, listed, _ = c.call("GET", f"/api/v1/tasks?instance_id={body['id']}")
            assert status == 200, (status, listed)
            began = time.perf_counter()
            status, done, _ = c.call("POST", f"/api/v1/tasks/{listed['items'][0]['id']}/complete", {"data": {}},
                                     MINIMAL)
            completions.append((time.perf_counter() - began) * 1000)
            assert status in (200, 204), (status, done)
            requests += 2
            if stop.is_set():
                break
    c.conn.close()
    out.append((completions, requests))


def measure(web: int, clients: int, seconds: float, warmup: float) -> dict:
    schema = "scale_" + uuid.uuid4().hex[:8]
    import psycopg

    admin = psycopg.connect(PG_BASE, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    work = Path(tempfile.mkdtemp(prefix="inkless-scale-"))
    proc = None
    try:
        proc, c = start_inkless(work, f"{PG_BASE}?options=-csearch_path%3D{schema}&application_name={schema}", web)
        port, token = c.conn.port, c.token
        c.conn.close()

        def run(duration: float) -> tuple[list, float, float]:
            stop, out = threading.Event(), []
            threads = [threading.Thread(target=_client, args=(port, token, stop, out)) for _ in range(clients)]
            cpu0, t0 = server_cpu_seconds(proc.pid), time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(duration)
            stop.set()
            for t in threads:
                t.join(timeout=120)
            return out, time.perf_counter() - t0, server_cpu_seconds(proc.pid) - cpu0

        run(warmup)
        out, elapsed, cpu = run(seconds)
        completions = [ms for times, _ in out for ms in times]
        requests = sum(n for _, n in out)
        return {"web": web, "per_s": len(completions) / elapsed, "req_s": requests / elapsed,
                "median_ms": statistics.median(completions), "cpu_ms": 1000 * cpu / len(completions)}
    finally:
        stop_server(proc)
        pg_drop_schema(admin, schema)
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    args = ap.parse_args()
    rows = [measure(web, args.clients, args.seconds, args.warmup) for web in (1, 2)]
    print(f"PostgreSQL, {args.clients} clients, {args.seconds:g} s each; machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("web processes  completions/s  requests/s  completion median ms  server CPU ms/completion")
    for r in rows:
        print(f"{r['web']:>13}  {r['per_s']:>13.1f}  {r['req_s']:>10.1f}  {r['median_ms']:>20.2f}  {r['cpu_ms']:>24.2f}")
    print(f"2 vs 1: {rows[1]['per_s'] / rows[0]['per_s']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
