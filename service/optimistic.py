"""Units of work that run designer code hold no database lock while it runs (issue 13).

Scripts, conditions, instruction templates and `due` expressions are written by designers and may
run for seconds. A unit that runs them (start, complete, deliver a message, fire timers, retry,
move back, cancel) goes in three phases:

1. read — the instance row with its `lock_version`, the open task, the definition — in
   `db.reading`: on SQLite without BEGIN (no write lock), nowhere with FOR UPDATE; on SQLite ended
   before 2, on PostgreSQL left open (a transaction that only read holds no lock a writer waits on,
   and the write phase then needs no new connection; `db.end_reads`);
2. step — the engine runs with no transaction open, and so does everything else that evaluates
   designer code for the projection (task views with their rendered instructions, `due` values,
   the serialized state; service/instances.py `_project`);
3. write — the write transaction: the instance row's UPDATE comes first and is the version check
   (`version_id_col`; on PostgreSQL it also locks the row for the few milliseconds the rest
   takes), then history, open tasks, jobs and audit.

Another unit that wrote the instance in between makes 3 fail (`LostRace`): everything is rolled
back and the unit runs once more from 1 on what is there now. Two people completing two parallel
tasks of one instance at the same moment both did valid work, and before this they were queued
behind a lock, so answering the second with 409 would be a regression; a second loss in a row
answers 409 (the same task completed twice finds it gone on the rerun and says so).

A service task touches the database during 2: that opens the write transaction there, and what
follows in the step runs inside it — its effects must commit or roll back with the step. A caller
whose transaction has already written (an account application starts an instance and completes
its first task in one unit; a test that starts many instances before committing) cannot have it
ended: the unit then runs inline in that transaction, as before, with FOR UPDATE on PostgreSQL.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TypeVar

from flask_babel import gettext as _
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import db
from .errors import Conflict

T = TypeVar("T")
_optimistic: contextvars.ContextVar[bool] = contextvars.ContextVar("inkless_optimistic", default=False)


class LostRace(Exception):
    """Another unit wrote the instance between this unit's read and its write."""


def conflict() -> Conflict:
    return Conflict(_("Someone else changed this instance at the same time; reload and try again."))


def run(s: Session, attempt: Callable[[], T], tries: int = 2) -> T:
    """Run `attempt` (read, step, write) with no lock held before its write; again on a lost race."""
    if _optimistic.get() or not db.end_reads(s):
        return attempt()  # nested, or the caller's transaction has written: inline
    token = _optimistic.set(True)
    try:
        for _try in range(tries):
            try:
                return attempt()
            except LostRace:
                s.rollback()
        raise conflict()
    finally:
        _optimistic.reset(token)


def optimistic() -> bool:
    """Whether this unit reads without locks and relies on the version check (else FOR UPDATE)."""
    return _optimistic.get()


def lost() -> Exception:
    """What to raise on finding the unit's read outdated: retry it, or (inline) answer 409."""
    return LostRace() if _optimistic.get() else conflict()


def write_first(s: Session) -> None:
    """Flush what is pending, the instance row's version-checked UPDATE first among it."""
    try:
        s.flush()
    except StaleDataError:
        if _optimistic.get():
            raise LostRace() from None
        raise
