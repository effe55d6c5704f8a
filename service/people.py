"""Administering people and departments (issue 17, R-ACC-3, R-ACC-4): the service behind the
account pages and the API; creating calls `org.create_user`/`org.create_department`, as the CLI does.

Who: the system administrator anywhere, a department administrator within their own department
and only for its ordinary users (`auth.may_administer`, the rule of password resets). What they
grant stays within what they may grant (`policy.may_grant`, R-SEC-7); office groups (dept_head,
platform_admin) follow the office, not a form. Deactivation is refused while the account still
owns something to hand over (`handover.holdings`, R-ACC-4).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import audit, auth, handover, org, policy
from .errors import Conflict, Forbidden, Invalid, NotFound
from .models import Department, Group, User, UserGroup
from .passwords import initial_password

USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
DEPARTMENT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATES = ("active", "inactive")


def _invalid(field: str, message: str, summary: str | None = None) -> Invalid:
    return Invalid(summary or _("The account is invalid."), [{"field": field, "message": message}])


def listing(s: Session, admin: User, q: str = "", department: str = "", role: str = "",
            state: str = "") -> list[User]:
    """The accounts `admin` may read, filtered by a search (username, name, post) and by department, role, state."""
    policy.authorize(admin, "read", "user", message=_("Only administrators may do this."))
    query = select(User).join(Department, Department.id == User.department_id).where(
        policy.scope_filter(admin, "read", "user"))
    if q.strip():
        pattern = "%" + q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(*(func.lower(c).like(pattern, escape="\\")
                                  for c in (User.username, User.full_name, User.post, User.email))))
    if department:
        query = query.where(Department.code == department)
    if role:
        query = query.where(User.role == role)
    if state in STATES:
        query = query.where(User.active.is_(state == "active"))
    return list(s.scalars(query.order_by(Department.code, User.full_name, User.username)))


def departments_for(s: Session, admin: User) -> list[Department]:
    """Where `admin` may create accounts."""
    rows = s.scalars(select(Department).order_by(Department.code)).all()
    return [d for d in rows if auth.is_admin_of(admin, d.id)]


def grantable(s: Session, admin: User, department: Department | None = None) -> tuple[list[str], list[Group]]:
    """The roles and groups `admin` may hand out (to people of `department`)."""
    roles = [r for r in ("user", "dept_admin") if not policy.may_grant(admin, r)]
    groups = [g for g in s.scalars(select(Group).order_by(Group.code))
              if g.code not in policy.OFFICE_GROUPS and not policy.may_grant(admin, None, [g])
              and (department is None or g.department_id in (None, department.id))]
    return roles, groups


def _groups(s: Session, codes: Iterable[str]) -> list[Group]:
    codes = sorted({c for c in codes if c})
    rows = list(s.scalars(select(Group).where(Group.code.in_(codes))))
    unknown = sorted(set(codes) - {g.code for g in rows})
    if unknown:
        raise _invalid("groups", _("unknown group '%(code)s'", code=unknown[0]))
    return rows


def _check_grant(admin: User, role: str | None, groups: list[Group], department: Department) -> None:
    if role is not None and role not in ("user", "dept_admin"):
        raise _invalid("role", _("choose an ordinary user or a department administrator"))
    office = [g.code for g in groups if g.code in policy.OFFICE_GROUPS]
    if office:
        raise _invalid("groups", _("'%(code)s' follows an office and is not granted here", code=office[0]))
    foreign = [g.code for g in groups if g.department_id not in (None, department.id)]
    if foreign:
        raise _invalid("groups", _("'%(code)s' is a group of another department", code=foreign[0]))
    beyond = policy.may_grant(admin, role, groups)
    if beyond:  # nobody grants more than they hold (R-SEC-7)
        raise Forbidden(_("You may not grant: %(what)s.", what="、".join(beyond)))


def _text(data: dict, name: str, limit: int) -> str:
    return str(data.get(name) or "").strip()[:limit]


def create(s: Session, admin: User, data: dict) -> tuple[User, str]:
    """A new account with a temporary password (shown once; changed at first sign-in)."""
    username, full_name = _text(data, "username", 64), _text(data, "full_name", 200)
    if not USERNAME.match(username):
        raise _invalid("username", _("2 to 64 letters, digits, '.', '_' or '-'"))
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise _invalid("username", _("this username is taken"))
    if not full_name:
        raise _invalid("full_name", _("required"))
    department = s.scalar(select(Department).where(Department.code == _text(data, "department", 64)))
    if department is None:
        raise _invalid("department", _("choose a department"))
    if not auth.is_admin_of(admin, department.id):
        raise Forbidden(_("You may create accounts only in your own department."))
    role = _text(data, "role", 32) or "user"
    groups = _groups(s, data.get("groups") or [])
    _check_grant(admin, role, groups, department)
    temporary = initial_password(16)
    user = org.create_user(s, username, temporary, department.code, role, [g.code for g in groups],
                           full_name=full_name, actor_id=admin.id)
    user.must_change_password = True
    user.email = _text(data, "email", 200) or None
    user.post = _text(data, "post", 200) or None
    return user, temporary


def administered(s: Session, admin: User, user_id: int) -> User:
    """The account, if `admin` may administer it (else 404 for what they may not read, 403 for the rest)."""
    user = s.get(User, user_id)
    if user is None or not policy.allows(admin, "read", "user", user):
        raise NotFound(_("No such user."))
    if not auth.may_administer(admin, user):
        raise Forbidden(_("Only the system administrator or the user's department administrator may do this."))
    return user


def update(s: Session, admin: User, user_id: int, data: dict) -> User:
    """Change name, e-mail, post, role and groups; a group or role given or taken away must be one
    `admin` may grant. Office groups stay as they are."""
    user = administered(s, admin, user_id)
    before = {"full_name": user.full_name, "email": user.email, "post": user.post, "role": user.role,
              "groups": sorted(user.groups)}
    if "full_name" in data:
        full_name = _text(data, "full_name", 200)
        if not full_name:
            raise _invalid("full_name", _("required"))
        user.full_name = full_name
    for name in ("email", "post"):
        if name in data:
            setattr(user, name, _text(data, name, 200) or None)
    role = _text(data, "role", 32) or user.role
    if "groups" in data:
        wanted = _groups(s, data.get("groups") or [])
        current = {g.code: g for g in s.scalars(select(Group).where(Group.code.in_(user.groups)))}
        kept = {c for c in current if c in policy.OFFICE_GROUPS}
        wanted_codes = {g.code for g in wanted}
        changed = [g for g in wanted if g.code not in current] + [
            g for c, g in current.items() if c not in wanted_codes and c not in kept]
        _check_grant(admin, role if role != user.role else None, changed, user.department)
        user.group_links = [link for link in user.group_links if link.group_code in kept | wanted_codes]
        for code in sorted(wanted_codes - user.groups):
            user.group_links.append(UserGroup(user_id=user.id, group_code=code))
    elif role != user.role:
        _check_grant(admin, role, [], user.department)
    user.role = role
    s.flush()
    after = {"full_name": user.full_name, "email": user.email, "post": user.post, "role": user.role,
             "groups": sorted(user.groups)}
    if after != before:
        audit.record(s, "user_changed", "user", user.id, actor_id=admin.id,
                     detail={"username": user.username, "before": before, "after": after})
    return user


class HandOverIncomplete(Conflict):
    """409: the account still owns something; `details` lists what (R-ACC-4)."""

    code = "hand_over_incomplete"


def deactivate(s: Session, admin: User, user_id: int, reason: str) -> User:
    """Deactivate an account whose business is handed over; refused while it owns open tasks,
    running processes or documents (R-ACC-4), which are listed."""
    user = administered(s, admin, user_id)
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", _("required"))
    if not user.active:
        raise Conflict(_("The account of %(name)s is deactivated already.", name=user.full_name))
    held = handover.holdings(s, user)
    if held:
        details = ([{"kind": "task", "id": t.id, "name": t.name} for t in held.tasks]
                   + [{"kind": "instance", "id": i.id, "name": f"{i.process_key} #{i.id}"} for i in held.instances]
                   + [{"kind": "document", "id": d.id, "name": d.title} for d in held.documents])
        counts = held.counts()
        raise HandOverIncomplete(_(
            "%(name)s still has %(tasks)s open task(s), %(instances)s running process(es) and %(documents)s "
            "document(s); hand them over first (账号权限变更与注销), then deactivate.", name=user.full_name,
            tasks=counts["open_tasks"], instances=counts["instances"], documents=counts["documents"]), details)
    handover.deactivate(s, user, admin.id, {"reason": reason[:2000]})
    return user


def create_department(s: Session, admin: User, code: str, name: str, parent: str | None = None,
                      name_en: str | None = None) -> Department:
    """A new department (system administrators: the organisation is platform configuration)."""
    if not auth.is_system_admin(admin):
        raise Forbidden(_("Only the system administrator may create departments."))
    code, name = (code or "").strip(), (name or "").strip()
    summary = _("The department is invalid.")
    if not DEPARTMENT_CODE.match(code):
        raise _invalid("code", _("letters, digits, '_' or '-' (at most 64)"), summary)
    if s.scalar(select(Department.id).where(Department.code == code)) is not None:
        raise _invalid("code", _("this code is taken"), summary)
    if not name:
        raise _invalid("name", _("required"), summary)
    if parent and s.scalar(select(Department.id).where(Department.code == parent)) is None:
        raise _invalid("parent", _("choose a department"), summary)
    return org.create_department(s, code, name[:255], parent or None, actor_id=admin.id,
                                 name_en=(name_en or "").strip()[:200] or None)


def set_head(s: Session, admin: User, code: str, username: str) -> Department:
    """Name the head of a department (an active member of it); the dept_head group follows the office."""
    department = s.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise NotFound(_("No such department."))
    if not auth.is_admin_of(admin, department.id):
        raise Forbidden(_("Only the system administrator or the department's administrator may do this."))
    head = s.scalar(select(User).where(User.username == (username or "").strip(), User.active.is_(True)))
    if head is None or head.department_id != department.id:
        raise _invalid("head", _("choose an active member of the department"), _("The department is invalid."))
    previous = s.get(User, department.head_id) if department.head_id else None
    department.head_id = head.id
    if previous is not None and previous.id != head.id:
        still_head = s.scalar(select(Department.id).where(Department.head_id == previous.id,
                                                          Department.id != department.id).limit(1))
        if still_head is None:
            previous.group_links = [link for link in previous.group_links if link.group_code != "dept_head"]
    if "dept_head" not in head.groups:
        head.group_links.append(UserGroup(user_id=head.id, group_code="dept_head"))
    s.flush()
    audit.record(s, "department_head_set", "department", department.id, actor_id=admin.id,
                 detail={"code": code, "head": head.username, "previous": previous.username if previous else None})
    return department
