"""Inkless beside the naive stack's floor (bench/floor_app.py), one run, one client (issue 16).

    python bench/side_by_side.py               # SQLite (a fresh data dir / file for each)
    python bench/side_by_side.py --postgres    # a fresh schema each in postgresql://postgres@127.0.0.1:5432/test

Both servers run under gunicorn with one `gthread` web process (Inkless through `inkless serve
--workers 1`, its scheduler embedded as in production), both are driven by the same keep-alive
http.client over loopback, one request at a time, and only the completion call is timed:

- complete at history h: one instance of bench/loop.bpmn, completed round after round; the median
  of `--width` completions from history h on (each round adds three steps: work, tick, again);
- five-step approvals per second: bench/five_step.bpmn started and carried to its end (1 start,
  5 × (list my tasks of the instance, complete)), `--five` instances in a row, whole requests/s;
  and the server's CPU time per instance (user + system of its processes, from /proc), which
  drifts less than the rate when the VM's speed does.

Inkless is asked for `Prefer: return=minimal` on starts and completions, as the floor only answers
id and state; `--full` times Inkless's full instance answer instead. The floor has no sign-in, forms,
permissions, history, search projection or script isolation: the ratio is what those cost.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete_task import (  # noqa: E402
    BPMN,
    PASSWORD,
    PG_BASE,
    ROOT,
    USERNAME,
    Client,
    free_port,
    pct,
    pg_drop_schema,
    run_cli,
    stop_server,
)

FIVE = ROOT / "bench" / "five_step.bpmn"
FLOOR_TOKEN = "floor-token"  # bench/floor_app.py


@dataclass
class Routes:
    start: str
    tasks: str
    complete: str
    write_headers: dict  # sent with starts and completions


INKLESS = Routes("/api/v1/process-instances", "/api/v1/tasks?instance_id={}", "/api/v1/tasks/{}/complete",
                 {"Prefer": "return=minimal"})
FLOOR = Routes("/start", "/tasks?instance_id={}", "/tasks/{}/complete", {})


def _spawn(cmd: list[str], env: dict, log: Path, port: int, probe: str, token: str | None) -> subprocess.Popen:
    f = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    proc._bench_log = f  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            c = Client(port)
            c.token = token
            status, _, _ = c.call("GET", probe)
            c.conn.close()
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{cmd} did not answer within 60 s")


def server_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and its children still running (gunicorn's master and workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, pgid = int(entry.name), int(fields[1]), int(fields[2])
        if pid == root_pid or ppid == root_pid or pgid == root_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _pg_url(schema: str) -> str:
    return f"{PG_BASE}?options=-csearch_path%3D{schema}&application_name={schema}"


def start_inkless(work: Path, database_url: str | None, workers: int = 1) -> tuple[subprocess.Popen, Client]:
    """`inkless init`, a user, the bench processes deployed, `inkless serve --workers N`; a signed-in client."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "INKLESS_SECRET_KEY")}
    env["INKLESS_DATA_DIR"] = str(work / "inkless")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if database_url:
        env["DATABASE_URL"] = database_url
    run_cli(env, "init")
    run_cli(env, "department", "create", "BENCH", "--name", "Benchmark")
    run_cli(env, "user", "create", "--username", USERNAME, "--password", PASSWORD, "--department", "BENCH")
    for path in (BPMN, FIVE):
        run_cli(env, "deploy", str(path))
    port = free_port()
    cmd = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = _spawn(cmd, env, work / "inkless.log", port, "/healthz", None)
    c = Client(port)
    status, body, _ = c.call("POST", "/api/v1/auth/token", {"username": USERNAME, "password": PASSWORD})
    assert status == 200, (status, body)
    c.token = body["access_token"]
    return proc, c


def start_floor(work: Path, database_url: str | None) -> tuple[subprocess.Popen, Client]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url or f"sqlite:///{work / 'floor.db'}"
    env["FLOOR_BPMN"] = os.pathsep.join(str(p) for p in (BPMN, FIVE))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "8", "--keep-alive", "5",
           "-b", f"127.0.0.1:{port}", "bench.floor_app:app"]
    proc = _spawn(cmd, env, work / "floor.log", port, "/tasks?instance_id=0", FLOOR_TOKEN)
    c = Client(port)
    c.token = FLOOR_TOKEN
    return proc, c


def _start(c: Client, routes: Routes, key: str) -> int:
    status, body, _ = c.call("POST", routes.start, {"process_key": key}, routes.write_headers)
    assert status == 201, (status, body)
    return body["id"]


def _next_task(c: Client, routes: Routes, instance_id: int) -> str | None:
    status, body, _ = c.call("GET", routes.tasks.format(instance_id))
    assert status == 200, (status, body)
    return body["items"][0]["id"] if body["items"] else None


def _complete(c: Client, routes: Routes, task_id, data: dict) -> float:
    c.ensure_connected()
    t = time.perf_counter()
    status, body, _ = c.call("POST", routes.complete.format(task_id), {"data": data}, routes.write_headers)
    ms = (time.perf_counter() - t) * 1000
    assert status in (200, 204), (status, body)
    return ms


def completions_by_history(c: Client, routes: Routes, windows: list[int], width: int) -> dict[int, dict]:
    instance_id = _start(c, routes, "bench_loop")
    samples: dict[int, float] = {}
    for h in range(max(windows) + width):  # bounded: one round each
        task = _next_task(c, routes, instance_id)
        assert task is not None, f"the loop stalled at history {h}"
        samples[h] = _complete(c, routes, task, {"done": False})
    out = {}
    for w in windows:
        times = [samples[h] for h in range(w, w + width)]
        out[w] = {"median": statistics.median(times), "p90": pct(times, 0.9)}
    return out


def five_step_rate(c: Client, routes: Routes, n: int) -> tuple[float, dict]:
    """Instances per second, and the median ms of each kind of call."""
    parts: dict[str, list[float]] = {"start": [], "list": [], "complete": []}

    def timed(kind, call):
        began = time.perf_counter()
        out = call()
        parts[kind].append((time.perf_counter() - began) * 1000)
        return out

    t = time.perf_counter()
    for _ in range(n):
        instance_id = timed("start", lambda: _start(c, routes, "bench_five_step"))
        for _step in range(5):
            task = timed("list", lambda: _next_task(c, routes, instance_id))  # noqa: B023 - called at once
            assert task is not None
            parts["complete"].append(_complete(c, routes, task, {}))
        assert _next_task(c, routes, instance_id) is None
    return n / (time.perf_counter() - t), {k: statistics.median(v) for k, v in parts.items()}


def measure(name: str, starter, routes: Routes, work: Path, database_url: str | None, args) -> dict:
    proc, c = starter(work, database_url)
    try:
        # Warm-up: imports, caches, the connection pool, and (Inkless) the script workers, which
        # start on the first script and would otherwise be timed in the first window.
        five_step_rate(c, routes, 3)
        completions_by_history(c, routes, [0], 20)
        by_history = completions_by_history(c, routes, args.windows, args.width)
        cpu = server_cpu_seconds(proc.pid)
        rate, parts = five_step_rate(c, routes, args.five)
        cpu = (server_cpu_seconds(proc.pid) - cpu) / args.five * 1000
        return {"five_per_s": rate, "five_parts": parts, "five_cpu_ms": cpu, "history": by_history}
    finally:
        c.conn.close()
        stop_server(proc)
        print(f"  {name} done", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--windows", type=lambda s: [int(x) for x in s.split(",")], default=[10, 300])
    ap.add_argument("--width", type=int, default=30)
    ap.add_argument("--five", type=int, default=40, help="five-step instances to time")
    ap.add_argument("--full", action="store_true", help="time Inkless's full answer (no Prefer: return=minimal)")
    args = ap.parse_args(argv)
    if args.full:
        INKLESS.write_headers = {}
    work = Path(tempfile.mkdtemp(prefix="inkless-side-"))
    admin, schemas = None, []
    try:
        urls = {"inkless": None, "floor": None}
        if args.postgres:
            import psycopg

            admin = psycopg.connect(PG_BASE, autocommit=True)
            for who in urls:
                schema = f"bench_{who}_{uuid.uuid4().hex[:8]}"
                admin.execute(f'CREATE SCHEMA "{schema}"')
                schemas.append(schema)
                urls[who] = _pg_url(schema)
        results = {"floor": measure("floor", start_floor, FLOOR, work, urls["floor"], args),
                   "inkless": measure("inkless", start_inkless, INKLESS, work, urls["inkless"], args)}
    finally:
        for schema in schemas:
            pg_drop_schema(admin, schema)
        if admin is not None:
            admin.close()
        shutil.rmtree(work, ignore_errors=True)

    ink, floor = results["inkless"], results["floor"]
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}   Inkless answer: "
          f"{'full' if args.full else 'Prefer: return=minimal'}   width {args.width}, five-step n={args.five}")
    print(f"{'figure':<34}{'Inkless':>10}{'floor':>10}{'ratio':>8}")
    for w in args.windows:
        i, f = ink["history"][w]["median"], floor["history"][w]["median"]
        print(f"{f'complete at history {w}, median ms':<34}{i:>10.2f}{f:>10.2f}{i / f:>7.2f}×")
        i, f = ink["history"][w]["p90"], floor["history"][w]["p90"]
        print(f"{f'complete at history {w}, p90 ms':<34}{i:>10.2f}{f:>10.2f}{i / f:>7.2f}×")
    i, f = ink["five_per_s"], floor["five_per_s"]
    print(f"{'five-step approvals per second':<34}{i:>10.1f}{f:>10.1f}{f / i:>7.2f}× (floor/Inkless)")
    for part in ("start", "list", "complete"):
        i, f = ink["five_parts"][part], floor["five_parts"][part]
        print(f"{f'  five-step: {part}, median ms':<34}{i:>10.2f}{f:>10.2f}{i / f:>7.2f}×")
    i, f = ink["five_cpu_ms"], floor["five_cpu_ms"]
    print(f"{'  five-step: server CPU ms/instance':<34}{i:>10.1f}{f:>10.1f}{i / f:>7.2f}×")
    first, last = args.windows[0], args.windows[-1]
    print(f"growth h{first}→h{last}: Inkless {ink['history'][last]['median'] / ink['history'][first]['median']:.2f}×, "
          f"floor {floor['history'][last]['median'] / floor['history'][first]['median']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
