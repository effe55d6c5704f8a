"""Who stands above whom: the platform management department, and a person's superior, to whom
an overdue step escalates (R-WF-2).

A person's superior is the head of their department; a head's is the head of the nearest
department above that has one. Where nobody is above (the head of the top department, or a tree
without heads), the platform management department answers, as it does for any step that finds
nobody (instances.FALLBACK_GROUP).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Department, OpenTask, User, UserGroup

# The functional group of the platform management department.
PLATFORM_GROUP = "platform_admin"


def platform_department(s: Session) -> Department | None:
    """The platform management department as the organisation records it: the department where
    the active members of the `platform_admin` group work (most of them, should they be spread
    out); before anyone holds that group, the system administrators' department."""
    count = func.count(User.id)
    for holders in (select(User.department_id).join(UserGroup, UserGroup.user_id == User.id)
                    .where(UserGroup.group_code == PLATFORM_GROUP),
                    select(User.department_id).where(User.role == "system_admin")):
        row = s.execute(holders.add_columns(count).where(User.active.is_(True)).group_by(User.department_id)
                        .order_by(count.desc(), User.department_id).limit(1)).first()
        if row is not None:
            return s.get(Department, row[0])
    return None


@dataclass
class Superiors:
    users: set[int] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


def superiors_of_task(s: Session, instance_id: int, element_id: str) -> Superiors:
    """The superiors of the people who may do the open user task `element_id` of the instance:
    its assignee if someone took it, else its candidates (a group's active members)."""
    people: set[int] = set()
    for task in s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id, OpenTask.element_id == element_id)):
        if task.assignee_id is not None:
            people.add(task.assignee_id)
            continue
        people |= {c.user_id for c in task.candidates if c.user_id is not None}
        groups = {c.group_code for c in task.candidates if c.group_code is not None}
        if groups:
            people |= set(s.scalars(select(UserGroup.user_id).join(User, User.id == UserGroup.user_id)
                                    .where(UserGroup.group_code.in_(groups), User.active.is_(True))))
    found = {head for person in sorted(people) if (head := superior(s, s.get(User, person))) is not None}
    return Superiors(users=found) if found else Superiors(groups={PLATFORM_GROUP})


def superior(s: Session, user: User | None) -> int | None:
    """The id of `user`'s superior, or None when nobody in the tree is above them."""
    if user is None:
        return None
    department: Department | None = user.department
    seen: set[int] = set()
    while department is not None and department.id not in seen:
        seen.add(department.id)
        if department.head_id is not None and department.head_id != user.id:
            head = s.get(User, department.head_id)
            if head is not None and head.active:
                return head.id
        department = department.parent
    return None
