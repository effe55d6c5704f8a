"""`inkless serve`: the app on gunicorn, a pre-forking WSGI server (issue 16, R-OPS-1).

Why gunicorn: it is the well-kept production server for WSGI on Linux, its `gthread` workers give
each process a pool of request threads (the app is thread-safe: one session per request), and its
master restarts dead workers, reloads gracefully on HUP (new workers with fresh code and settings
start, old ones finish their requests) and writes an access log in the Apache "combined" format.

Processes: one master, `workers` web processes of `threads` threads each. Each web process builds
its own app after the fork (never inherits the master's database connections), so HUP reloads code.

Timers run in exactly one kind of place. `inkless worker` processes (any number; the job table keeps
them from firing one job twice) or, for the single-process default, one scheduler thread in the one
web process ("embedded"). With several web processes the embedded scheduler is refused: one thread
per web process would multiply the polling for nothing; run `inkless worker` beside them instead.
"""
from __future__ import annotations

import ctypes
import gc
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from flask import Flask

# The Apache/NCSA "combined" log format, which log tools read as is; the request's duration in
# microseconds (%(D)s) is appended.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
SCHEDULER_CHOICES = ("auto", "embedded", "off")


@dataclass(frozen=True)
class Serving:
    bind: str = "127.0.0.1:5000"
    workers: int = 1
    threads: int = 8
    # "auto": embedded when there is one web process, off (timers left to `inkless worker`) otherwise.
    scheduler: str = "auto"
    access_log: str = "-"
    # Seconds a worker has to finish its requests on reload or stop before it is killed.
    graceful_timeout: int = 30
    keepalive: int = 5

    def embedded_scheduler(self) -> bool:
        if self.scheduler == "embedded" and self.workers > 1:
            raise ValueError("the embedded scheduler runs in one web process only (--workers 1); "
                             "with more, run `inkless worker` beside them and --scheduler off")
        return self.scheduler == "embedded" or (self.scheduler == "auto" and self.workers == 1)


def run(master_app: Flask, build: Callable[[], Flask], serving: Serving) -> None:
    """Serve until stopped. `master_app` did the start-up work (security policy record) in the
    master; `build` makes each web process's own app."""
    embedded = serving.embedded_scheduler()
    # The master keeps no database connection: a forked child must not share its sockets.
    master_app.extensions["inkless.engine"].dispose()
    if not embedded:
        print("inkless: no scheduler in the web processes; timers fire in `inkless worker`", file=sys.stderr)
    _gunicorn(build, _options(serving, embedded)).run()


def _options(serving: Serving, embedded: bool) -> dict:
    return {
        "bind": [serving.bind],
        "workers": serving.workers,
        "threads": serving.threads,
        "worker_class": "gthread",
        "accesslog": serving.access_log or None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "graceful_timeout": serving.graceful_timeout,
        "keepalive": serving.keepalive,
        # gunicorn's largest: the API answers long queries itself (service/bounds.py MAX_QUERY_BYTES).
        "limit_request_line": 8190,
        "proc_name": "inkless",
        # gunicornc's socket sits at one path per user: servers side by side (tests) would share it.
        "control_socket_disable": True,
        "post_fork": _die_with_master,
        "post_worker_init": partial(_worker_ready, embedded),
    }


def _worker_ready(embedded: bool, worker) -> None:
    """The web process has built its app: its start-up objects (modules, the app, the mapped
    classes) live as long as the process, so the collector stops scanning them. A full collection
    went over all of them, about 200,000 objects, taking 175 ms inside some request (issue 16)."""
    gc.collect()
    gc.freeze()
    if embedded:
        _start_scheduler(worker)


def _die_with_master(_server, _worker) -> None:
    """A web process ends when its master is killed outright (SIGKILL, OOM), as one process would:
    no orphan keeps answering on the port with code the operator meant to stop."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_scheduler(worker) -> None:
    from .scheduler import start_background

    start_background(worker.wsgi)


def _gunicorn(build: Callable[[], Flask], options: dict):
    # Imported here: `inkless worker`, `init` and the tests never need gunicorn.
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return build()

    return Application()
