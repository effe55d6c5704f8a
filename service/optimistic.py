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
   (`lock_version`, the mapper's `version_id_col`, compared and bumped by `write_first`; on
   PostgreSQL the UPDATE also locks the row for the few milliseconds the rest takes), then
   history, open tasks, jobs and audit.

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
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask_babel import gettext as _
from sqlalchemy import bindparam, inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
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


def write_first(s: Session, row: Any, values: dict[str, Any]) -> None:
    """Write `values` to the instance row, its version-checked UPDATE first, then flush what else
    is pending. A row the session already holds unchanged is written by one Core UPDATE that checks
    and bumps the version itself: the ORM's flush of it cost more than the statement (issue 16). A
    new row, or one changed earlier in the unit, goes through the flush with the rest."""
    state = inspect(row)
    if not state.persistent or state.modified:
        for key, value in values.items():
            setattr(row, key, value)
        _flush_checked(s)
        return
    mapper = state.mapper
    version = mapper.version_id_col
    current, key = getattr(row, version.key), state.identity[0]
    done = s.connection().execute(_update_of(mapper, tuple(values)),
                                  {**values, "_key": key, "_seen": current, version.key: current + 1})
    if done.rowcount != 1:
        if _optimistic.get():
            raise LostRace()
        raise StaleDataError(f"{mapper.local_table.name} {key}: version {current} is no longer current")
    for key, value in values.items():
        set_committed_value(row, key, value)
    set_committed_value(row, version.key, current + 1)
    _flush_checked(s)  # the rest, if anything is pending (a clean session's flush returns at once)


@functools.cache
def _update_of(mapper: Any, keys: tuple[str, ...]) -> Any:
    """UPDATE … SET <keys>, version = :version WHERE id = :_key AND version = :_seen, built once
    per set of columns (building a statement costs about what running it does)."""
    table, version = mapper.local_table, mapper.version_id_col
    (pk,) = mapper.primary_key
    return (update(table).where(pk == bindparam("_key"), version == bindparam("_seen"))
            .values({name: bindparam(name) for name in (*keys, version.key)}))


def _flush_checked(s: Session) -> None:
    try:
        s.flush()
    except StaleDataError:
        if _optimistic.get():
            raise LostRace() from None
        raise
