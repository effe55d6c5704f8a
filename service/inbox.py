"""What is on a person's plate: the open tasks assigned to them, or offered to them or their groups
and not yet claimed by anyone (R-WF-2). Reads only the open-task projection, never an engine state.
"""
from __future__ import annotations

from sqlalchemy import Select, func, or_, select

from .models import OpenTask, ProcessDefinition, ProcessInstance, TaskCandidate, User, utcnow

SCOPES = ("mine", "assigned", "unclaimed", "overdue")


def offered_to(user: User) -> Select:
    """Ids of the tasks whose candidates name the user or one of their groups."""
    return select(TaskCandidate.task_id).where(
        or_(TaskCandidate.user_id == user.id, TaskCandidate.group_code.in_(user.groups or {""})))


def tasks_for(user: User, scope: str = "mine", search: str | None = None) -> Select:
    """(OpenTask, ProcessInstance, process name) rows, soonest due first, then oldest."""
    unclaimed = OpenTask.assignee_id.is_(None) & OpenTask.id.in_(offered_to(user))
    query = (select(OpenTask, ProcessInstance, ProcessDefinition.name)
             .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id))
    if scope == "assigned":
        query = query.where(OpenTask.assignee_id == user.id)
    elif scope == "unclaimed":
        query = query.where(unclaimed)
    else:
        query = query.where(or_(OpenTask.assignee_id == user.id, unclaimed))
        if scope == "overdue":
            query = query.where(OpenTask.due_at < utcnow())
    if search and search.strip():
        pattern = "%" + _like_escape(search.strip().lower()) + "%"
        query = query.where(or_(*(func.lower(column).like(pattern, escape="\\") for column in (
            OpenTask.name, OpenTask.process_key, ProcessDefinition.name, ProcessInstance.business_key))))
    return query.order_by(OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.created_at, OpenTask.id)


def count(s, query: Select) -> int:
    return s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
