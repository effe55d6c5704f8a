"""Functions the platform offers to diagrams (service tasks) and scripts (helpers).

These are the only way a diagram reaches outside its own data. Each service runs inside the
unit of work of the step that called it, so its effects commit or roll back with that step, and
each declares on whose authority it acts (service/authority.py): a diagram can do no more than
the one who deployed it, nor act on approvals it does not have.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, policy
from .authority import ACCOUNTS, AUTHORITIES, Approval, Authority, Refused, granted_by, guarded
from .models import Department, Group, User, UserGroup
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


SERVICES: dict = {}
HELPERS: dict = {}


def service(name: str, *, authority: Authority):
    """Register a function as a service diagrams may call: `fn(params: dict, task_data: dict) -> JSON-able`.
    It runs in the calling step's transaction (`current_unit.get().session`). `authority` says
    what it does and the permission it needs (`authority.CHECKS_ONLY` when it only checks); a
    privileged service runs behind the run-time checks of service/authority.py."""

    def register(fn):
        if name in SERVICES:
            raise ValueError(f"service {name} registered twice")
        AUTHORITIES[name] = authority
        SERVICES[name] = guarded(name, authority, fn) if authority.privileged else fn
        return fn

    return register


@service("create_account", authority=Authority(
    ACCOUNTS, "create", "user",
    # R-ACC-2: the head of the account's department, then the platform management department,
    # which decides the roles and groups (least privilege).
    relies_on=(Approval("dept_head_review", "dept_head:department"),
               Approval("platform_review", "platform_admin", grants=True))))
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
    roles = {str(r) for r in params.get("roles") or []} or {"user"}
    groups = {str(g) for g in params.get("groups") or []}
    # Nobody grants more than they hold (R-ACC-3, R-SEC-7): the platform's reviewer decides the
    # grant, so the account gets nothing that reviewer could not hand out — never system_admin, nor
    # the office groups platform_admin and dept_head.
    # The platform's groups and the department's own (a department's group holds only its people).
    group_rows = s.scalars(select(Group).where(Group.code.in_(groups), Group.department_id.is_(None)
                                               | (Group.department_id == department.id))).all()
    approvers = granted_by()
    beyond = sorted({b for approver in approvers for r in roles for b in policy.may_grant(approver, r, group_rows)})
    if beyond or not approvers:
        raise Refused(_("Service '%(service)s' refused: the approvals do not cover granting %(grants)s.",
                        service="create_account", grants=", ".join(beyond) or "?"))
    role = "dept_admin" if "dept_admin" in roles else "user"
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
    granted = sorted(g.code for g in group_rows)
    for code in granted:
        s.add(UserGroup(user_id=user.id, group_code=code))
    audit.record(s, "account_created", "user", user.id, actor_id=unit.actor_id,
                 detail={"username": username, "role": role, "groups": granted, "instance": unit.instance_id})
    unit.one_time.append({"kind": "initial_password", "username": username, "password": password})
    return {"user_id": user.id, "username": username, "role": role, "groups": granted}


def _load_procedure_services() -> None:
    """Every module in service/procedures/ registers the services of one procedure."""
    import importlib
    import pkgutil

    from . import procedures

    for module in pkgutil.iter_modules(procedures.__path__):
        importlib.import_module(f"{procedures.__name__}.{module.name}")


_load_procedure_services()
