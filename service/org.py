"""Departments, users and functional groups (R-ACC-3)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import BUILTIN_GROUPS, ROLES, Department, Group, User, UserGroup
from .passwords import hash_password


class OrgError(ValueError):
    pass


def ensure_groups(s: Session) -> None:
    """The built-in groups every installation has; departments add their own (service/groups.py)."""
    existing = set(s.scalars(select(Group.code)))
    for code, (name, name_en) in BUILTIN_GROUPS.items():
        if code not in existing:
            s.add(Group(code=code, name=name, name_en=name_en))
    s.flush()


def create_department(s: Session, code: str, name: str, parent_code: str | None = None,
                      actor_id: int | None = None, name_en: str | None = None) -> Department:
    if s.scalar(select(Department.id).where(Department.code == code)) is not None:
        raise OrgError(f"department {code} already exists")
    parent = None
    if parent_code:
        parent = s.scalar(select(Department).where(Department.code == parent_code))
        if parent is None:
            raise OrgError(f"parent department {parent_code} does not exist")
    department = Department(code=code, name=name, name_en=name_en or None, parent_id=parent.id if parent else None)
    s.add(department)
    s.flush()
    audit.record(s, "department_created", "department", department.id, actor_id=actor_id, detail={"code": code})
    return department


def create_user(s: Session, username: str, password: str, department_code: str, role: str = "user",
                groups: list[str] | tuple[str, ...] = (), head: bool = False, full_name: str | None = None,
                actor_id: int | None = None) -> User:
    if role not in ROLES:
        raise OrgError(f"unknown role {role}; choose one of {', '.join(ROLES)}")
    department = s.scalar(select(Department).where(Department.code == department_code))
    if department is None:
        raise OrgError(f"department {department_code} does not exist")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise OrgError(f"user {username} already exists")
    ensure_groups(s)
    known = {g.code: g for g in s.scalars(select(Group).where(Group.code.in_(groups)))}
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise OrgError(f"unknown group(s): {', '.join(unknown)}")
    foreign = [code for code, g in known.items() if g.department_id not in (None, department.id)]
    if foreign:  # a department's group holds only its own people
        raise OrgError(f"group(s) of another department: {', '.join(sorted(foreign))}")
    user = User(username=username, full_name=full_name or username, password_hash=hash_password(password),
                department_id=department.id, role=role)
    user.group_links = [UserGroup(group_code=g) for g in dict.fromkeys(groups)]
    s.add(user)
    s.flush()
    if head:
        department.head_id = user.id
        if "dept_head" not in groups:
            user.group_links.append(UserGroup(user_id=user.id, group_code="dept_head"))
    audit.record(s, "user_created", "user", user.id, actor_id=actor_id,
                 detail={"username": username, "role": role, "groups": list(groups), "head": head})
    return user
