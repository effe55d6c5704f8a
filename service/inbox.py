"""What is on a person's plate: the open tasks assigned to them, or offered to them or their groups
and not yet claimed by anyone (R-WF-2). Reads only the open-task projection, never an engine state.

A page is the merge of branches — "assigned to me", "offered to me", one "offered to group G" per
group of mine — each reading its first rows in page order from an index and stopping there
(task_candidates carry their task's sort key, migration 0017_candidate_page_keys); a task offered to
two of my groups comes once. Claims do not touch candidates, so an offered branch looks up whether
its task is still unclaimed in open_tasks, by primary key, for the rows it reads only. Pages are
keyset pages (`after` = the last row's sort key); offsets work but read every row before them.

The count stops at COUNT_CAP = 1,000 (shown "1000+"; it was 10,000): an offered task is counted only
after that look-up, and 8,000 of them took most of R-WF-2's 50 ms (docs/performance.md, "My
tasks"). A search or an API filter makes a plain query instead (`MyTasks.where`), whose ids come
from every candidate of mine: a branch could not stop before it had filtered its rows.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union,
    union_all,
)

from .db import UTCDateTime
from .models import NO_DEADLINE, OpenTask, ProcessDefinition, ProcessInstance, TaskCandidate, User, utcnow

SCOPES = ("mine", "assigned", "unclaimed", "overdue")
# Counting stops here: a number past it ("1000+") tells nobody more, and each task costs a look-up.
COUNT_CAP = 1_000
# Soonest due first (tasks without a deadline last), then oldest, then by id: a total order.
ORDER = (OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.created_at, OpenTask.id)


class BadCursor(ValueError):
    """An `after` that no page of ours handed out."""


def offered_to(user: User) -> Select:
    """Ids of the tasks whose candidates name the user or one of their groups."""
    return _offered(user.id, user.groups or None)


def _offered(user_id, groups) -> Select:
    by_user = select(TaskCandidate.task_id).where(TaskCandidate.user_id == user_id)
    if groups is None:
        return by_user
    return union_all(by_user, select(TaskCandidate.task_id).where(TaskCandidate.group_code.in_(groups)))


def my_task_ids(user: User, scope: str = "mine") -> Select:
    """Ids of the user's open tasks in a scope (mine = assigned ∪ unclaimed, the two disjoint)."""
    return _task_ids(user.id, offered_to(user), scope)


def _task_ids(user_id, offered: Select, scope: str) -> Select:
    assigned = select(OpenTask.id).where(OpenTask.assignee_id == user_id)
    unclaimed = select(OpenTask.id).where(OpenTask.assignee_id.is_(None), OpenTask.id.in_(offered))
    if scope == "assigned":
        return assigned
    if scope == "unclaimed":
        return unclaimed
    return union_all(assigned, unclaimed)


@dataclass(frozen=True)
class MyTasks:
    """The user's open tasks in a scope, read branch by branch (the module's docstring says how)."""

    user: User
    scope: str = "mine"
    due_before: datetime | None = None  # the overdue scope
    after: tuple | None = None  # (due_key, created_at, id) of the row the page starts after

    def where(self, *criteria) -> Select:
        """The same tasks, filtered, as a plain query of OpenTask rows in ORDER."""
        return self.statement().where(*criteria)

    def statement(self) -> Select:
        """The same tasks as a plain query of OpenTask rows in ORDER (without `after`)."""
        query = select(OpenTask).where(OpenTask.id.in_(my_task_ids(self.user, self.scope)))
        if self.due_before:
            query = query.where(OpenTask.due_at < self.due_before)
        return query.order_by(*ORDER)

    def first(self, n: int) -> Select:
        """Ids of the tasks after `after` in ORDER, right for the first n only (the caller limits)."""
        branches = []
        if self.scope != "unclaimed":
            keys = (func.coalesce(OpenTask.due_at, literal(NO_DEADLINE, UTCDateTime())), OpenTask.created_at,
                    OpenTask.id)
            assigned = _keyed(keys).where(OpenTask.assignee_id == self.user.id)
            if self.due_before:
                assigned = assigned.where(OpenTask.due_at < self.due_before)
            branches.append(self._branch(assigned, keys, n))
        if self.scope != "assigned":
            keys = (TaskCandidate.due_key, TaskCandidate.created_at, TaskCandidate.task_id)
            unclaimed = (_keyed(keys).join(OpenTask, OpenTask.id == TaskCandidate.task_id)
                         .where(OpenTask.assignee_id.is_(None)))
            if self.due_before:
                unclaimed = unclaimed.where(TaskCandidate.due_key < self.due_before)
            offers = [TaskCandidate.user_id == self.user.id,
                      *(TaskCandidate.group_code == g for g in sorted(self.user.groups))]
            branches += [self._branch(unclaimed.where(offer), keys, n) for offer in offers]
        # UNION, not UNION ALL: a task offered to me and to my group, or to two of my groups, is one row.
        rows = union(*branches).subquery()
        return select(rows.c.id).order_by(rows.c.due_key, rows.c.created_at, rows.c.id)

    def _branch(self, query: Select, keys: tuple, n: int) -> Select:
        if self.after:
            # One row-value comparison: an index seek to the cursor on both databases.
            query = query.where(tuple_(*keys) > self.after)
        # A member of a UNION may have ORDER BY and LIMIT only inside a subquery (SQLite).
        return select(query.order_by(*keys).limit(n).subquery())


def _keyed(keys: tuple) -> Select:
    due_key, created_at, task_id = keys
    return select(task_id.label("id"), due_key.label("due_key"), created_at.label("created_at"))


def my_tasks(user: User, scope: str = "mine", search: str | None = None) -> MyTasks | Select:
    """The user's open tasks: what page() and count() read (OpenTask rows in ORDER)."""
    mine = MyTasks(user, scope, utcnow() if scope == "overdue" else None)
    if not (search and search.strip()):
        return mine
    pattern = "%" + _like_escape(search.strip().lower()) + "%"
    # Correlated: looked at for the user's own tasks only, never across all instances.
    instance_matches = (select(ProcessInstance.id)
                        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                        .where(ProcessInstance.id == OpenTask.instance_id,
                               or_(func.lower(ProcessDefinition.name).like(pattern, escape="\\"),
                                   func.lower(ProcessInstance.business_key).like(pattern, escape="\\")))
                        .exists())
    return mine.where(or_(func.lower(OpenTask.name).like(pattern, escape="\\"),
                          func.lower(OpenTask.process_key).like(pattern, escape="\\"), instance_matches))


def tasks_for(user: User, scope: str = "mine", search: str | None = None) -> Select:
    """(OpenTask, ProcessInstance, process name) rows in ORDER."""
    query = my_tasks(user, scope, search)
    return with_instances(query.statement() if isinstance(query, MyTasks) else query)


def with_instances(query: Select) -> Select:
    """OpenTask rows → (OpenTask, ProcessInstance, process name) rows."""
    return (query.add_columns(ProcessInstance, ProcessDefinition.name)
            .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id))


# The API's filters of a task list, and the criterion each adds; its value is a bind parameter named
# after the filter (`overdue`: the moment deadlines are compared with).
FILTERS = {
    "process_key": lambda: OpenTask.process_key == bindparam("process_key"),
    "overdue": lambda: and_(OpenTask.due_at.is_not(None), OpenTask.due_at <= bindparam("overdue")),
    "instance_id": lambda: OpenTask.instance_id == bindparam("instance_id"),
}


@lru_cache(maxsize=64)
def filtered_page(scope: str, grouped: bool, filters: tuple[str, ...]) -> Select:
    """`page(my_tasks(user, scope).where(<filters>), None, size, offset)` as `listed` rows,
    built once per shape: the user (`me`, `my_groups` when `grouped`), the filters' values and the
    page's `size` and `skip` are bind parameters. Building the statement and its cache key cost a
    filtered list (the tasks of one instance) more than running it."""
    offered = _offered(bindparam("me"), bindparam("my_groups", expanding=True) if grouped else None)
    query = select(OpenTask).where(OpenTask.id.in_(_task_ids(bindparam("me"), offered, scope)),
                                   *(FILTERS[name]() for name in filters)).order_by(*ORDER)
    return listed(query.with_only_columns(OpenTask.id).limit(bindparam("size")).offset(bindparam("skip")))


def page(query: MyTasks | Select, cursor: str | None, size: int, offset: int = 0) -> Select:
    """The OpenTask rows of one page of `query` (OpenTask rows in ORDER). The page's ids are chosen
    and sorted from indexes alone; only they are then read in full."""
    return select(OpenTask).where(OpenTask.id.in_(page_ids(query, cursor, size, offset))).order_by(*ORDER)


def page_ids(query: MyTasks | Select, cursor: str | None, size: int, offset: int = 0) -> Select:
    if isinstance(query, MyTasks):
        return after(query, cursor).first(size + offset).limit(size).offset(offset)
    return after(query, cursor).with_only_columns(OpenTask.id).limit(size).offset(offset)


# A list's tasks are read as plain rows, not ORM objects: loading OpenTask entities with their
# candidates cost a list of one instance's tasks more than the rest of the request (issue 16).
_TASKS, _CANDIDATES = OpenTask.__table__, TaskCandidate.__table__
_TASK_KEYS = tuple(c.key for c in _TASKS.columns)


@dataclass(frozen=True)
class Candidate:
    user_id: int | None
    group_code: str | None


class ListedTask:
    """An open task as a list shows it: OpenTask's columns as attributes, and its candidates."""

    def __init__(self, columns: dict, candidates: list[Candidate]):
        self.__dict__.update(columns)
        self.candidates = candidates


def listed(ids: Select) -> Select:
    """The tasks `ids` selects, in ORDER, one row per candidate (`read` makes them tasks)."""
    return (select(_TASKS, _CANDIDATES.c.user_id.label("candidate_user"),
                   _CANDIDATES.c.group_code.label("candidate_group"))
            .select_from(_TASKS.outerjoin(_CANDIDATES, _CANDIDATES.c.task_id == _TASKS.c.id))
            .where(_TASKS.c.id.in_(ids))
            .order_by(*ORDER, _CANDIDATES.c.id))


def read(s, statement: Select, params: dict | None = None) -> list[ListedTask]:
    """The ListedTasks of a `listed` statement, in its order. Run on the session's connection: its
    rows are plain rows, and the session's ORM handling of a statement built from mapped classes
    cost more than running it."""
    tasks: dict[str, ListedTask] = {}
    for row in s.connection().execute(statement, params or {}):
        task = tasks.get(row.id)
        if task is None:
            task = tasks[row.id] = ListedTask({key: row[i] for i, key in enumerate(_TASK_KEYS)}, [])
        if row.candidate_user is not None or row.candidate_group is not None:
            task.candidates.append(Candidate(row.candidate_user, row.candidate_group))
    return list(tasks.values())


def count(s, query: MyTasks | Select, cap: int | None = None) -> int:
    """How many rows `query` has, at most cap + 1 (more than cap: show "cap+")."""
    cap = cap or COUNT_CAP
    if isinstance(query, MyTasks):
        capped = query.first(cap + 1).order_by(None).limit(cap + 1).subquery()
    else:
        capped = query.order_by(None).with_only_columns(literal_column("1")).limit(cap + 1).subquery()
    return s.scalar(select(func.count()).select_from(capped))


def shown_count(total: int) -> str:
    return f"{COUNT_CAP}+" if total > COUNT_CAP else str(total)


def after(query: MyTasks | Select, cursor: str | None) -> MyTasks | Select:
    """The rows of `query` (in ORDER) that come after the row the cursor was made from."""
    if not cursor:
        return query
    due, created, task_id = _decode(cursor)
    if isinstance(query, MyTasks):
        return replace(query, after=(due or NO_DEADLINE, created, task_id))
    # coalesce(x, x) is x, but no index on x serves it: the page stays driven by the user's task ids
    # instead of a walk along the deadline index through everybody's tasks.
    due_at = func.coalesce(OpenTask.due_at, OpenTask.due_at)
    created_at = func.coalesce(OpenTask.created_at, OpenTask.created_at)
    later = or_(created_at > created, and_(created_at == created, OpenTask.id > task_id))
    if due is None:
        return query.where(due_at.is_(None), later)
    return query.where(or_(due_at.is_(None), due_at > due, and_(due_at == due, later)))


def cursor_of(task: OpenTask) -> str:
    key = f"{task.due_at.isoformat() if task.due_at else ''}|{task.created_at.isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime | None, datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, created, task_id = raw.split("|", 2)
        return (datetime.fromisoformat(due) if due else None), datetime.fromisoformat(created), task_id
    except ValueError as e:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadCursor(cursor) from e


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
