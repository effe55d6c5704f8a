"""Starting a process (`inkless serve`, `init`, `worker`) while the database or the storage is away:
one line on the console instead of a traceback, and for a database that does not answer, waiting
for it with growing pauses up to `INKLESS_DB_WAIT` seconds (`--no-wait`: not at all), then exiting
with EX_TEMPFAIL so a supervisor (systemd, a container runtime) starts the process again later.

A full or read-only storage does not stop a server from starting: it answers 503 saying so
(service/outage.py) and works again once the storage does.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy.exc import DBAPIError

from . import health, outage

EX_TEMPFAIL = 75  # sysexits.h: a temporary failure, try again later
FIRST_PAUSE = 0.5
LONGEST_PAUSE = 15.0


def say(line: str) -> None:
    print(f"inkless: {line}", file=sys.stderr, flush=True)


def where(app: Flask) -> str:
    """The database as an operator knows it, without user name or password."""
    url = app.extensions["inkless.engine"].url
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def open_app(make: Callable[[], Flask]) -> Flask:
    """`make()` (the app from the configuration), or one line and EX_TEMPFAIL when the data
    directory cannot be made or written (the secret key is kept there)."""
    try:
        return make()
    except OSError as e:
        found = outage.classify(e)
        if found is None:
            raise
        say(f"cannot start: {found.message()} ({found.reason})")
        raise SystemExit(EX_TEMPFAIL) from None


def wait_for_database(app: Flask, patience: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once the database answers; wait up to `patience` seconds for one that does not
    (pauses doubling from FIRST_PAUSE to LONGEST_PAUSE), then exit with EX_TEMPFAIL."""
    deadline = time.monotonic() + patience
    pause = FIRST_PAUSE
    told = False
    while True:
        found = health.database(app)
        if found is None or found.code != outage.DATABASE_UNAVAILABLE:
            if told:
                say(f"the database at {where(app)} answers; starting")
            return
        left = deadline - time.monotonic()
        if left <= 0:
            if told:
                say(f"gave up: the database at {where(app)} did not answer within {patience:g} s")
            else:
                say(f"the database at {where(app)} cannot be reached ({found.reason}); not waiting")
            raise SystemExit(EX_TEMPFAIL)
        if not told:
            say(f"the database at {where(app)} cannot be reached ({found.reason}); "
                f"trying again for up to {patience:g} s (INKLESS_DB_WAIT, --no-wait)")
            told = True
        sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


def ready_app(make: Callable[[], Flask], no_wait: bool = False) -> Flask:
    """The app for a command that needs the database: opened, and its database answering."""
    app = open_app(make)
    wait_for_database(app, 0 if no_wait else app.config["INKLESS"].database_wait)
    return app


def tolerate(step: Callable[[], object], what: str) -> None:
    """Run a start-up write that may wait for the next start: on full or read-only storage (or
    a database that went away meanwhile) say so in one line and carry on."""
    try:
        step()
    except (DBAPIError, OSError) as e:
        found = outage.classify(e)
        if found is None:
            raise
        say(f"{what} skipped until the next start: {found.message()} ({found.reason})")


def fail_in_one_line(step: Callable[[], object]) -> object:
    """Run a command's work; an outage half-way through (the database lost during `init`, the
    disk filling up) ends it with one line and EX_TEMPFAIL instead of a traceback."""
    try:
        return step()
    except (DBAPIError, OSError) as e:
        found = outage.classify(e)
        if found is None:
            raise
        say(f"stopped: {found.message()} ({found.reason})")
        raise SystemExit(EX_TEMPFAIL) from None
