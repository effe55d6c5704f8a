"""Time "complete a task" over HTTP against a real `inkless serve` process, as an instance ages.

    python bench/complete_task.py                 # SQLite in a fresh INKLESS_DATA_DIR
    python bench/complete_task.py --postgres      # PostgreSQL, in a fresh schema of postgresql://postgres@127.0.0.1:5432/test
    python bench/complete_task.py --profile       # also profile completions after each window (cProfile + pyinstrument)

Set-up, all through the product's own commands: `inkless init`, `inkless department create`,
`inkless user create`, `inkless deploy bench/loop.bpmn`, then `inkless serve` on 127.0.0.1 (a free
port). The client signs in once (POST /api/v1/auth/token; argon2 at the product's default cost),
starts one instance of `bench_loop` and then, round after round:

    GET  /api/v1/tasks?instance_id=<id>            -> the open `work` task (not timed)
    POST /api/v1/tasks/<task>/complete {"data": {"done": false}}   -> timed

with http.client. The client is keep-alive, but `inkless serve` (werkzeug's run_simple) closes the
connection after every response, so the client reconnects before each call, outside the timing.
"History h" is the number of rounds completed before the timed call (each round adds 3 history
steps: work, tick, again). Statistics are reported for a window of `--width` completions starting
at each history in `--windows`. With --postgres the URL carries the schema as
`?options=-csearch_path%3D<schema>` and `application_name=<schema>` (to find this run's sessions).

With --profile the server is the same app under the same werkzeug `run_simple(threaded=True)`, but
started by this file (`--serve-profiled`): a WSGI middleware reports a per-request breakdown of
server time (X-Bench-Breakdown) and profiles requests carrying the header X-Bench-Profile (after each
window: the first under cProfile, the rest under pyinstrument if installed); those are not counted.

Every loop is bounded; the server is stopped (and the PostgreSQL schema dropped) on exit or error.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BPMN = ROOT / "bench" / "loop.bpmn"
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
USERNAME = "bench"
PASSWORD = "bench-password-7c1f"


# ------------------------------------------------------------------------------------- the server

def inkless_cmd() -> list[str]:
    """The `inkless` console script of this interpreter (no pyenv shim), else the same entry point."""
    script = Path(sys.executable).parent / "inkless"
    if script.exists():
        return [str(script)]
    found = shutil.which("inkless")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]


def run_cli(env: dict, *args: str) -> str:
    out = subprocess.run(inkless_cmd() + list(args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"inkless {' '.join(args[:2])} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, log: Path, profile_dir: Path | None) -> subprocess.Popen:
    if profile_dir is None:
        cmd = inkless_cmd() + ["serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-profiled", str(port), str(profile_dir)]
    f = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    proc._bench_log = f  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("server did not answer /healthz within 60 s")


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: only the server (and any child)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    log = getattr(proc, "_bench_log", None)
    if log:
        log.close()


def serve_profiled(port: int, profile_dir: Path) -> None:
    """`inkless serve` plus measurement (used with --profile):

    - every request gets a header X-Bench-Breakdown: JSON of inclusive wall-clock ms spent in the
      parts of a completion (wrappers installed on module attributes here, in this process only;
      the service code is not changed) and the SQL time/statement count (SQLAlchemy events);
    - a request carrying X-Bench-Profile: <name> also runs under cProfile -> <profile_dir>/<name>.prof.
    """
    import cProfile
    import functools
    import threading

    from sqlalchemy import event
    from werkzeug.serving import run_simple

    sys.path.insert(0, str(ROOT))
    from sqlalchemy.orm import Session

    from engine import codec
    from engine.runtime import Instance
    from service import audit, create_app
    from service import auth as service_auth
    from service import instances as units
    from service.api import views
    from service.config import Config

    app = create_app(Config.from_env())
    local = threading.local()

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            acc = getattr(local, "acc", None)
            if acc is None:
                return fn(*a, **kw)
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc[name] = acc.get(name, 0.0) + (time.perf_counter() - t) * 1000
        return wrapper

    for mod, attr, name in (
        (units, "complete", "unit.complete"),
        (units, "form_schema", "unit.form_schema"),
        (units, "_load", "unit.load_row"),
        (units, "_engine_instance", "unit.engine_load"),
        (units, "_persist", "unit.persist"),
        (units, "_sync_open_tasks", "persist.open_tasks"),
        (units, "_history_row", "persist.history_rows"),
        (audit, "record", "audit.record"),
        (views, "instance", "view.instance"),
        (codec, "compact", "engine.compact"),
        (codec, "dumps", "engine.codec_dumps"),
        (codec, "loads", "engine.codec_loads"),
    ):
        if callable(getattr(mod, attr, None)):  # the service changes; measure what exists
            setattr(mod, attr, timed(name, getattr(mod, attr)))
    Instance.complete = timed("engine.complete_run", Instance.complete)
    Instance.dumps = timed("engine.dumps", Instance.dumps)
    Session.commit = timed("db.commit", Session.commit)
    funcs = app.before_request_funcs.get(None, [])
    for i, f in enumerate(funcs):
        if f is service_auth._load_user:
            funcs[i] = timed("auth.load_user", f)

    engine = app.extensions["inkless.engine"]

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_t", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        t = conn.info["bench_t"].pop()
        acc = getattr(local, "acc", None)
        if acc is not None:
            acc["sql.execute"] = acc.get("sql.execute", 0.0) + (time.perf_counter() - t) * 1000
            acc["sql.statements"] = acc.get("sql.statements", 0) + 1

    inner = app.wsgi_app

    def wsgi(environ, start_response):
        local.acc = {}
        name = environ.get("HTTP_X_BENCH_PROFILE")
        prof = cProfile.Profile() if name else None
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["args"] = (status, headers, exc_info)
            return lambda data: None  # flask never uses write()

        # The first request of a group runs under cProfile (exact call counts), the others under
        # pyinstrument when it is installed (sampling, 0.5 ms; sessions are combined per group).
        group = Path(name).name if name else None
        sampler = None
        if group:
            if (profile_dir / f"{group}.prof").exists():
                prof = None
                try:
                    from pyinstrument import Profiler

                    sampler = Profiler(interval=0.0005, async_mode="disabled")
                except ImportError:
                    pass
        t = time.perf_counter()
        c0 = time.thread_time()
        if prof:
            prof.enable()
        if sampler:
            sampler.start()
        try:
            body = b"".join(inner(environ, capture))
        finally:
            if prof:
                prof.disable()
                prof.dump_stats(str(profile_dir / f"{group}.prof"))
            if sampler:
                sampler.stop()
                (profile_dir / group).mkdir(exist_ok=True)
                sampler.last_session.save(str(profile_dir / group / f"{uuid.uuid4().hex}.pyisession"))
        acc = local.acc
        local.acc = None
        acc["total"] = (time.perf_counter() - t) * 1000
        acc["total.server_cpu"] = (time.thread_time() - c0) * 1000  # this request thread only
        status, headers, exc_info = captured["args"]
        headers = list(headers) + [("X-Bench-Breakdown", json.dumps(acc, separators=(",", ":")))]
        start_response(status, headers, exc_info)
        return [body]

    app.wsgi_app = wsgi
    # As `inkless serve` does (when its version has a scheduler): timers fire inside the server.
    try:
        from service.scheduler import start_background
    except ImportError:
        start_background = None
    if start_background is not None and not os.environ.get("INKLESS_NO_SCHEDULER"):
        start_background(app)
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


# ------------------------------------------------------------------------------------- the client

class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token: str | None = None
        self.reconnects = 0
        self.last_breakdown = None

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, int]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if self.conn.sock is None:
            # The server closed the connection (a "Connection: close" answer, or gunicorn's
            # keep-alive ran out while the client was idle): connect before the clock starts.
            self.reconnects += 1
            self.conn.connect()
        return self._send(method, path, data, h)

    def ensure_connected(self) -> None:
        if self.conn.sock is None:
            self.reconnects += 1
            self.conn.connect()

    def _send(self, method, path, data, h) -> tuple[int, dict, int]:
        self.conn.request(method, path, body=data, headers=h)
        resp = self.conn.getresponse()
        raw = resp.read()
        self.last_breakdown = json.loads(resp.getheader("X-Bench-Breakdown") or "null")
        return resp.status, (json.loads(raw) if raw else {}), len(raw)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="inkless-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "INKLESS_SECRET_KEY")}
    env["INKLESS_DATA_DIR"] = str(work / "data")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    schema = None
    admin = None
    server = None
    result: dict = {"database": "postgresql" if args.postgres else "sqlite"}
    try:
        if args.postgres:
            import psycopg

            schema = f"inkless_bench_{uuid.uuid4().hex[:10]}"
            admin = psycopg.connect(PG_BASE, autocommit=True)
            admin.execute(f'CREATE SCHEMA "{schema}"')
            # application_name marks this run's sessions, so clean-up can end exactly those.
            env["DATABASE_URL"] = f"{PG_BASE}?options=-csearch_path%3D{schema}&application_name={schema}"
        run_cli(env, "init")
        run_cli(env, "department", "create", "BENCH", "--name", "Benchmark")
        run_cli(env, "user", "create", "--username", USERNAME, "--password", PASSWORD, "--department", "BENCH")
        out = run_cli(env, "deploy", str(BPMN))
        assert "bench_loop" in out, out
        port = free_port()
        profile_dir = work / "profiles" if args.profile else None
        if profile_dir:
            profile_dir.mkdir()
        server = start_server(env, port, work / "server.log", profile_dir)

        c = Client(port)
        t = time.perf_counter()
        status, body, _ = c.call("POST", "/api/v1/auth/token", {"username": USERNAME, "password": PASSWORD})
        result["login_ms"] = (time.perf_counter() - t) * 1000
        assert status == 200, (status, body)
        c.token = body["access_token"]
        status, body, _ = c.call("POST", "/api/v1/process-instances", {"process_key": "bench_loop"})
        assert status == 201, (status, body)
        instance_id = body["id"]

        windows = [int(w) for w in args.windows.split(",")]
        # With --profile, `--profile-width` extra completions follow each window, profiled (and not
        # counted in the statistics): the first under cProfile, the rest under pyinstrument.
        pw = args.profile_width if args.profile else 0
        rounds = max(windows) + args.width + pw
        profile_group = {}
        for w in windows:
            for hh in range(w + args.width, w + args.width + pw):
                profile_group[hh] = f"complete_h{w}"
        samples: list[tuple[int, float, int]] = []  # (history, ms, response bytes)
        breakdowns: list[tuple[int, dict]] = []
        gets: list[tuple[int, float]] = []
        stalled_at = None
        h = 0
        t_start = time.monotonic()
        while h < rounds:  # bounded: one round per iteration, `rounds` in all
            if time.monotonic() - t_start > args.max_seconds:
                result["stopped"] = f"time limit {args.max_seconds:g} s reached at history {h}"
                break
            t = time.perf_counter()
            status, body, _ = c.call("GET", f"/api/v1/tasks?instance_id={instance_id}")
            gets.append((h, (time.perf_counter() - t) * 1000))
            assert status == 200, (status, body)
            if not body["items"]:
                stalled_at = h
                break
            task_id = body["items"][0]["id"]
            headers = None
            if h in profile_group:
                headers = {"X-Bench-Profile": profile_group[h]}
            c.ensure_connected()  # the TCP connect is not part of the timed call
            t = time.perf_counter()
            status, body, size = c.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": {"done": False}}, headers)
            ms = (time.perf_counter() - t) * 1000
            assert status == 200, (status, body)
            if headers is None:
                samples.append((h, ms, size))
                if c.last_breakdown:
                    breakdowns.append((h, c.last_breakdown))
            h += 1
        result["rounds_completed"] = h
        result["stalled_at"] = stalled_at
        result["reconnects"] = c.reconnects
        # Close the instance cleanly when it can still be closed.
        if stalled_at is None:
            status, body, _ = c.call("GET", f"/api/v1/tasks?instance_id={instance_id}")
            if status == 200 and body["items"]:
                c.call("POST", f"/api/v1/tasks/{body['items'][0]['id']}/complete", {"data": {"done": True}})
        status, body, size = c.call("GET", f"/api/v1/process-instances/{instance_id}")
        result["final_state"] = body.get("state")
        result["final_active_elements"] = body.get("active_elements")
        c.conn.close()

        table = []
        for w in windows:
            win = [(ms, size) for hh, ms, size in samples if w <= hh < w + args.width]
            gw = [ms for hh, ms in gets if w <= hh < w + args.width]
            if not win:
                table.append({"history": w, "n": 0})
                continue
            times = [m for m, _ in win]
            row = {"history": w, "n": len(win), "median_ms": statistics.median(times),
                   "p90_ms": pct(times, 0.9), "min_ms": min(times),
                   "response_bytes": int(statistics.median(s for _, s in win)),
                   "get_tasks_median_ms": statistics.median(gw) if gw else None}
            bw = [b for hh, b in breakdowns if w <= hh < w + args.width]
            if bw:
                keys = sorted({k for b in bw for k in b})
                row["breakdown_median"] = {k: statistics.median(b.get(k, 0.0) for b in bw) for k in keys}
            table.append(row)
        result["windows"] = table
        result["series"] = [(hh, round(ms, 3)) for hh, ms, _ in samples]
        stop_server(server)
        server = None
        result["db"] = db_facts(env, args.postgres, admin, schema, instance_id)
        if profile_dir:
            result["profiles"] = summarize_profiles(profile_dir, args.profile_top)
        return result
    finally:
        stop_server(server)
        if admin is not None:
            try:
                pg_drop_schema(admin, schema)
            finally:
                admin.close()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def pg_drop_schema(admin, schema: str) -> None:
    """Drop this run's schema; first end this run's own sessions (marked by application_name),
    which may still wait on a lock after their client died. Bounded: 5 attempts of 10 s."""
    admin.execute("SET lock_timeout = '10s'")
    for attempt in range(5):
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,))
        try:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        except Exception as e:  # noqa: BLE001 - lock timeout: try again
            print(f"drop schema {schema}: {e} (attempt {attempt + 1})", file=sys.stderr)
            time.sleep(1)
    print(f"could not drop schema {schema}", file=sys.stderr)


def db_facts(env: dict, postgres: bool, admin, schema: str | None, instance_id: int) -> dict:
    q_state = "SELECT length(engine_state) FROM process_instances WHERE id = %s"
    q_steps = "SELECT count(*) FROM instance_steps WHERE instance_id = %s"
    if postgres:
        admin.execute(f'SET search_path TO "{schema}"')
        state = admin.execute(q_state, (instance_id,)).fetchone()[0]
        steps = admin.execute(q_steps, (instance_id,)).fetchone()[0]
        admin.execute("SET search_path TO DEFAULT")
    else:
        con = sqlite3.connect(Path(env["INKLESS_DATA_DIR"]) / "inkless.db")
        try:
            state = con.execute(q_state.replace("%s", "?"), (instance_id,)).fetchone()[0]
            steps = con.execute(q_steps.replace("%s", "?"), (instance_id,)).fetchone()[0]
        finally:
            con.close()
    return {"engine_state_chars": state, "history_rows": steps}


def _inclusive_table(sessions: list[Path], top: int) -> str:
    """Inclusive sampled time per function, summed over all requests (recursion counted once)."""
    from pyinstrument.session import Session

    total = 0.0
    inclusive: dict[tuple[str, str], float] = {}
    own: dict[tuple[str, str], float] = {}
    for f in sessions:
        root = Session.load(str(f)).root_frame()
        if root is None:
            continue
        total += root.time
        stack = [(root, frozenset())]
        while stack:  # bounded by the size of the recorded tree
            frame, above = stack.pop()
            key = (frame.function or "?", f"{frame.file_path_short or ''}:{frame.line_no or ''}")
            if key not in above:
                inclusive[key] = inclusive.get(key, 0.0) + frame.time
            own[key] = own.get(key, 0.0) + frame.time - sum(c.time for c in frame.children)
            for child in frame.children:
                stack.append((child, above | {key}))
    n = len(sessions)
    lines = [f"{len(sessions)} requests, {total / n * 1000:.1f} ms per request under the sampler; "
             "ms per request, inclusive (own)"]
    for key, t in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{t / n * 1000:8.2f} ({own.get(key, 0.0) / n * 1000:6.2f})  {100 * t / total:5.1f}%  "
                     f"{key[0]}  {key[1]}")
    return "\n".join(lines)


def summarize_profiles(profile_dir: Path, top: int) -> dict:
    import io
    import pstats

    out = {}
    for path in sorted(profile_dir.glob("*.prof")):
        buf = io.StringIO()
        stats = pstats.Stats(str(path), stream=buf)
        stats.sort_stats("cumulative").print_stats(top)
        buf.write("\n--- by own time ---\n")
        stats.sort_stats("tottime").print_stats(top)
        entry = {"cprofile_total_s": stats.total_tt, "cprofile": buf.getvalue()}
        sessions = sorted((profile_dir / path.stem).glob("*.pyisession"))
        if sessions:
            entry["pyinstrument_requests"] = len(sessions)
            entry["pyinstrument"] = _inclusive_table(sessions, top)
        out[path.stem] = entry
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-profiled"]:
        serve_profiled(int(argv[1]), Path(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help=f"use a fresh schema in {PG_BASE}")
    ap.add_argument("--windows", default="10,300,1000", help="histories at which to report (window starts)")
    ap.add_argument("--width", type=int, default=40, help="completions per window")
    ap.add_argument("--max-seconds", type=float, default=1800, help="stop the loop after this long")
    ap.add_argument("--profile", action="store_true", help="profile one complete request at each window start")
    ap.add_argument("--profile-width", type=int, default=20, help="profiled completions after each window")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--json", type=Path, default=None, help="write all results (incl. every sample) here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir (server log, profiles)")
    args = ap.parse_args(argv)
    result = run(args)
    print(f"database: {result['database']}   login (argon2, once): {result['login_ms']:.0f} ms   "
          f"reconnects: {result['reconnects']}")
    print(f"{'history':>7} {'n':>4} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'resp B':>8} {'GET tasks ms':>13}")
    for r in result["windows"]:
        if not r["n"]:
            print(f"{r['history']:>7} {0:>4}   (not reached)")
            continue
        print(f"{r['history']:>7} {r['n']:>4} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['min_ms']:>8.2f}"
              f" {r['response_bytes']:>8,} {r['get_tasks_median_ms']:>13.2f}")
    if result.get("stalled_at") is not None:
        print(f"STALLED: after {result['stalled_at']} rounds GET /tasks returned no open task; instance state "
              f"{result.get('final_state')!r}, active elements {result.get('final_active_elements')}")
    if result.get("stopped"):
        print(f"stopped: {result['stopped']}")
    print(f"rounds completed: {result['rounds_completed']}   engine_state at the end: "
          f"{result['db']['engine_state_chars']:,} chars   history rows: {result['db']['history_rows']:,}")
    rows = [r for r in result["windows"] if r.get("breakdown_median")]
    if rows:
        print("\nserver-side breakdown, median ms per completion (inclusive; nested parts indented by name):")
        keys = sorted({k for r in rows for k in r["breakdown_median"]})
        print(f"{'part':<24}" + "".join(f"{'h=' + str(r['history']):>10}" for r in rows))
        for k in keys:
            print(f"{k:<24}" + "".join(f"{r['breakdown_median'].get(k, 0):>10.2f}" for r in rows))
    for name, prof in (result.get("profiles") or {}).items():
        print(f"\n===== cProfile, one request: {name} ({prof['cprofile_total_s'] * 1000:.1f} ms under cProfile) =====")
        print(prof["cprofile"])
        if prof.get("pyinstrument"):
            print(f"\n===== pyinstrument, {prof['pyinstrument_requests']} requests combined: {name} =====")
            print(prof["pyinstrument"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
