"""Functions the platform offers to diagrams (service tasks) and scripts (helpers).

These are the only way a diagram reaches outside its own data. Each service runs inside the
unit of work of the step that called it, so its effects commit or roll back with that step.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import ROLES, Department, Group, User, UserGroup
from .passwords import hash_password, initial_password


@dataclass
class UnitContext:
    session: Session
    actor_id: int | None
    instance_id: int | None
    definition_id: int | None = None
    # Secrets to show once to the caller of this request and never store (e.g. initial passwords).
    one_time: list[dict] = field(default_factory=list)


current_unit: contextvars.ContextVar[UnitContext] = contextvars.ContextVar("inkless_unit")


class ServiceFailure(Exception):
    pass


def create_account(params: dict, context: dict) -> dict:
    """R-ACC-2: after both approvals, create the account with the requested roles and groups and a
    one-time initial password that must be changed at first sign-in."""
    unit = current_unit.get()
    s = unit.session
    username = str(params.get("username") or "").strip()
    if not username:
        raise ServiceFailure("username is missing")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise ServiceFailure(f"user '{username}' already exists")
    department = s.scalar(select(Department).where(Department.code == params.get("department")))
    if department is None:
        raise ServiceFailure(f"department '{params.get('department')}' does not exist")
    requested = [r for r in (params.get("roles") or []) if r in ROLES]
    # An application can never yield a system administrator (R-ACC-3, no escalation).
    role = "dept_admin" if "dept_admin" in requested else "user"
    password = initial_password()
    user = User(
        username=username,
        full_name=str(params.get("full_name") or username),
        password_hash=hash_password(password),
        department_id=department.id,
        role=role,
        must_change_password=True,
        email=params.get("email") or None,
        phone=params.get("phone") or None,
        post=params.get("post") or None,
    )
    s.add(user)
    s.flush()
    known_groups = set(s.scalars(select(Group.code)))
    granted = sorted({g for g in (params.get("groups") or []) if g in known_groups and g != "platform_admin"})
    for code in granted:
        s.add(UserGroup(user_id=user.id, group_code=code))
    audit.record(s, "account_created", "user", user.id, actor_id=unit.actor_id,
                 detail={"username": username, "role": role, "groups": granted, "instance": unit.instance_id})
    unit.one_time.append({"kind": "initial_password", "username": username, "password": password})
    return {"user_id": user.id, "username": username, "role": role, "groups": granted}


SERVICES: dict = {
    "create_account": create_account,
}

HELPERS: dict = {}


def service(name: str):
    """Register a function as a service diagrams may call: `fn(params: dict, task_data: dict) -> JSON-able`.
    It runs in the calling step's transaction (`current_unit.get().session`)."""

    def register(fn):
        if name in SERVICES:
            raise ValueError(f"service {name} registered twice")
        SERVICES[name] = fn
        return fn

    return register


def _load_procedure_services() -> None:
    """Every module in service/procedures/ registers the services of one procedure."""
    import importlib
    import pkgutil

    from . import procedures

    for module in pkgutil.iter_modules(procedures.__path__):
        importlib.import_module(f"{procedures.__name__}.{module.name}")


_load_procedure_services()
