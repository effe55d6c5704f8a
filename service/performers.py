"""Who may do a user task: the lane (or the task's `performers` property) names them.

See docs/modelling.md for the spec language. Resolution happens when the task opens, against the
instance's data and initiator; group specs stay groups, so a member added later sees the task.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Department, User

# Chinese lane names used by the organisation's designers.
ALIASES = {
    "申请人": "initiator",
    "发起人": "initiator",
    "部门负责人": "dept_head",
    "部门领导": "dept_head",
    "部门管理员": "dept_admin",
    "平台管理部门": "platform_admin",
    "平台管理员": "platform_admin",
    "监督小组": "supervisor",
    "监督组": "supervisor",
    "系统管理员": "group:system_admin",
    "保密员": "confidentiality_officer",
    "检查员": "inspector",
}

_PAREN = re.compile(r"[(（]\s*([^()（）]+?)\s*[)）]\s*$")


@dataclass
class Candidates:
    users: set[int] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


def spec_for(lane: str | None, properties: dict[str, str]) -> str:
    """The performer spec of a task: its `performers` property, else its lane name."""
    if properties.get("performers"):
        return properties["performers"].strip()
    if not lane:
        return ""
    match = _PAREN.search(lane)
    if match:
        return match.group(1)
    return ALIASES.get(lane.strip(), lane.strip())


def resolve(s: Session, spec: str, data: dict, initiator: User | None) -> Candidates:
    out = Candidates()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        part = ALIASES.get(part, part)
        kind, _, arg = part.partition(":")
        if kind == "initiator":
            if initiator is not None:
                out.users.add(initiator.id)
        elif kind in ("dept_head", "dept_admin"):
            department = _department(s, arg, data, initiator)
            if department is None:
                continue
            if kind == "dept_head":
                if department.head_id:
                    out.users.add(department.head_id)
            else:
                out.users.update(s.scalars(select(User.id).where(
                    User.department_id == department.id, User.role == "dept_admin", User.active.is_(True))))
        elif kind == "user":
            user_id = s.scalar(select(User.id).where(User.username == arg))
            if user_id is not None:
                out.users.add(user_id)
        elif kind == "group":
            out.groups.add(arg)
        else:
            out.groups.add(part)
    return out


def _department(s: Session, field_name: str, data: dict, initiator: User | None) -> Department | None:
    if field_name:
        code = data.get(field_name)
        if not isinstance(code, str):
            return None
        return s.scalar(select(Department).where(Department.code == code))
    return initiator.department if initiator is not None else None
