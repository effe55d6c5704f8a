"""What is on a person's plate: the open tasks assigned to them, or offered to them or their groups
and not yet claimed by anyone (R-WF-2). Reads only the open-task projection, never an engine state.

The set is a UNION ALL of two disjoint parts — "assigned to me" and "unassigned, offered to me or my
groups" — each served by its own index (migration 0012_serving_inbox_indexes), never one OR that
makes the planner scan every open task. Pages are keyset pages (`after` = the last row's sort key)
whose ids are sorted from an index before any row is read, and the count stops at COUNT_CAP
(docs/performance.md, "My tasks").
"""
from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import Select, and_, func, literal_column, or_, select, union_all

from .models import OpenTask, ProcessDefinition, ProcessInstance, TaskCandidate, User, utcnow

SCOPES = ("mine", "assigned", "unclaimed", "overdue")
# Counting stops here: a number past it ("10000+") tells nobody more, and costs a scan.
COUNT_CAP = 10_000
# Soonest due first (tasks without a deadline last), then oldest, then by id: a total order.
ORDER = (OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.created_at, OpenTask.id)


class BadCursor(ValueError):
    """An `after` that no page of ours handed out."""


def offered_to(user: User) -> Select:
    """Ids of the tasks whose candidates name the user or one of their groups."""
    by_user = select(TaskCandidate.task_id).where(TaskCandidate.user_id == user.id)
    if not user.groups:
        return by_user
    return union_all(by_user, select(TaskCandidate.task_id).where(TaskCandidate.group_code.in_(user.groups)))


def my_task_ids(user: User, scope: str = "mine") -> Select:
    """Ids of the user's open tasks in a scope (mine = assigned ∪ unclaimed, the two disjoint)."""
    assigned = select(OpenTask.id).where(OpenTask.assignee_id == user.id)
    unclaimed = select(OpenTask.id).where(OpenTask.assignee_id.is_(None), OpenTask.id.in_(offered_to(user)))
    if scope == "assigned":
        return assigned
    if scope == "unclaimed":
        return unclaimed
    return union_all(assigned, unclaimed)


def my_tasks(user: User, scope: str = "mine", search: str | None = None) -> Select:
    """The user's open tasks (OpenTask rows) in ORDER; joins nothing, so it counts cheaply."""
    query = select(OpenTask).where(OpenTask.id.in_(my_task_ids(user, scope)))
    if scope == "overdue":
        query = query.where(OpenTask.due_at < utcnow())
    if search and search.strip():
        pattern = "%" + _like_escape(search.strip().lower()) + "%"
        # Correlated: looked at for the user's own tasks only, never across all instances.
        instance_matches = (select(ProcessInstance.id)
                            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                            .where(ProcessInstance.id == OpenTask.instance_id,
                                   or_(func.lower(ProcessDefinition.name).like(pattern, escape="\\"),
                                       func.lower(ProcessInstance.business_key).like(pattern, escape="\\")))
                            .exists())
        query = query.where(or_(func.lower(OpenTask.name).like(pattern, escape="\\"),
                                func.lower(OpenTask.process_key).like(pattern, escape="\\"), instance_matches))
    return query.order_by(*ORDER)


def tasks_for(user: User, scope: str = "mine", search: str | None = None) -> Select:
    """(OpenTask, ProcessInstance, process name) rows in ORDER."""
    return with_instances(my_tasks(user, scope, search))


def with_instances(query: Select) -> Select:
    """OpenTask rows → (OpenTask, ProcessInstance, process name) rows."""
    return (query.add_columns(ProcessInstance, ProcessDefinition.name)
            .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id))


def page(query: Select, cursor: str | None, size: int, offset: int = 0) -> Select:
    """The OpenTask rows of one page of `query` (OpenTask rows in ORDER). The page's ids are chosen
    and sorted from the index alone (ix_open_tasks_page); only they are then read in full."""
    ids = after(query, cursor).with_only_columns(OpenTask.id).limit(size).offset(offset)
    return select(OpenTask).where(OpenTask.id.in_(ids)).order_by(*ORDER)


def count(s, query: Select, cap: int | None = None) -> int:
    """How many rows `query` has, at most cap + 1 (more than cap: show "cap+")."""
    cap = cap or COUNT_CAP
    capped = query.order_by(None).with_only_columns(literal_column("1")).limit(cap + 1).subquery()
    return s.scalar(select(func.count()).select_from(capped))


def shown_count(total: int) -> str:
    return f"{COUNT_CAP}+" if total > COUNT_CAP else str(total)


def after(query: Select, cursor: str | None) -> Select:
    """The rows of `query` (in ORDER) that come after the row the cursor was made from."""
    if not cursor:
        return query
    due, created, task_id = _decode(cursor)
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
