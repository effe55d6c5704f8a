"""Functional groups as data (R-ACC-3, R-WF-1, issue 14).

A group has a code (what lanes and `performers` properties name), a Chinese name, optionally an
English one, and members. It belongs to a department, whose administrators keep it and whose people
alone are its members, or to the platform (no department). The built-in groups
(models.BUILTIN_GROUPS) carry rights in the permission table, so they are never renamed or deleted
and their members are granted only as `policy.GRANTABLE_GROUPS` allows.

Who may do what comes from service/policy.py: `manage on group` for the group, `manage on user` for
the member, `policy.may_grant` for the grant (nobody grants more than they hold, R-SEC-7).
`actor=None` is the installer at the command line. Every change is audited in the caller's unit of
work. A group is not deleted while open tasks are offered to it, nor while the current version of a
process names it (its lanes would reach nobody).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, performers, policy
from .errors import Conflict, Forbidden, Invalid, NotFound
from .models import Department, Group, ProcessDefinition, TaskCandidate, User, UserGroup

CODE = re.compile(r"[a-z][a-z0-9_]{1,63}")
# Words of the performer spec language (docs/modelling.md): a group so named could not be told apart.
RESERVED = performers.PEOPLE | {"user", "group"}


@dataclass(frozen=True)
class Member:
    username: str
    full_name: str


@dataclass(frozen=True)
class Listed:
    """A group as one reader sees it: the members they may read, and what they may do to it."""

    group: Group
    department: str | None
    members: list[Member]
    manageable: bool  # rename, delete
    grantable: bool  # add and remove members


def _actor_id(actor: User | None) -> int | None:
    return actor.id if actor is not None else None


def _may_manage(actor: User | None, group: Group) -> bool:
    return actor is None or policy.allows(actor, "manage", "group", group)


def _require_administrator(actor: User | None) -> None:
    """Anyone who keeps no group at all is refused before learning whether a group exists."""
    if actor is not None:
        policy.authorize(actor, "manage", "group", message=_("Only administrators may do this."))


def _require_manage(actor: User | None, group: Group) -> None:
    if not _may_manage(actor, group):
        raise Forbidden(_("Only the system administrators, or the administrators of its department, may change "
                          "group %(code)s.", code=group.code))


def _require_changeable(group: Group) -> None:
    if group.builtin:
        raise Forbidden(_("Group %(code)s is built in: it cannot be renamed or deleted.", code=group.code))


def get(s: Session, code: str) -> Group:
    group = s.get(Group, code)
    if group is None:
        raise NotFound(_("There is no group %(code)s.", code=code))
    return group


def default_department(actor: User | None) -> str | None:
    """Where a new group goes when the request names no department: the platform for those who
    may keep platform groups, otherwise the caller's own department."""
    if actor is None or policy.allows(actor, "manage", "group", Group(code="", department_id=None)):
        return None
    return actor.department.code


def assignable(group: Group, user: User) -> bool:
    """A department's group holds only that department's people; a platform group anyone."""
    return group.department_id is None or group.department_id == user.department_id


def visible(s: Session, reader: User | None) -> list[Listed]:
    """The groups `reader` may read (all for the installer), platform groups first, each with the
    members the reader may read."""
    query = select(Group).order_by(Group.department_id.is_not(None), Group.code)
    users = select(UserGroup.group_code, User.username, User.full_name).join(User, User.id == UserGroup.user_id)
    if reader is not None:
        query = query.where(policy.scope_filter(reader, "read", "group"))
        users = users.where(policy.scope_filter(reader, "read", "user"))
    rows = s.scalars(query).all()
    departments = dict(s.execute(select(Department.id, Department.code).where(
        Department.id.in_({g.department_id for g in rows if g.department_id}))).all())
    members: dict[str, list[Member]] = {}
    for code, username, full_name in s.execute(users.where(UserGroup.group_code.in_([g.code for g in rows]))
                                               .order_by(User.username)):
        members.setdefault(code, []).append(Member(username, full_name))
    return [Listed(g, departments.get(g.department_id), members.get(g.code, []),
                   manageable=not g.builtin and _may_manage(reader, g), grantable=not policy.may_grant(reader, groups=[g]))
            for g in rows]


def create(s: Session, actor: User | None, code: str, name: str, name_en: str | None = None,
           department: str | None = None) -> Group:
    """A new group of `department` (a code), or of the platform when None."""
    _require_administrator(actor)
    code = (code or "").strip()
    if not CODE.fullmatch(code) or code in RESERVED:
        raise Invalid(_("Invalid group code %(code)s.", code=code), [{"field": "code", "message": _(
            "2 to 64 lower-case letters, digits or underscores, starting with a letter, and not a word of the "
            "performer language (initiator, dept_head, dept_admin, system_admin, user, group).")}])
    name = (name or "").strip()
    if not name:
        raise Invalid(_("Give the group a name."), [{"field": "name", "message": _("required")}])
    home = None
    if department is not None:
        home = s.scalar(select(Department).where(Department.code == department))
        if home is None:
            raise Invalid(_("There is no department %(code)s.", code=department),
                          [{"field": "department", "message": _("unknown department")}])
    group = Group(code=code, name=name, name_en=(name_en or "").strip() or None, department_id=home.id if home else None)
    _require_manage(actor, group)
    if s.get(Group, code) is not None:
        raise Conflict(_("Group %(code)s already exists.", code=code), [{"field": "code", "message": _("taken")}])
    s.add(group)
    s.flush()
    audit.record(s, "group_created", "group", code, actor_id=_actor_id(actor),
                 detail={"code": code, "name": group.name, "name_en": group.name_en, "department": department})
    return group


def update(s: Session, actor: User | None, code: str, changes: dict) -> Group:
    """Rename a group (`name`, `name_en`); its code, which diagrams name, stays."""
    _require_administrator(actor)
    group = get(s, code)
    _require_changeable(group)
    _require_manage(actor, group)
    before = {"name": group.name, "name_en": group.name_en}
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise Invalid(_("Give the group a name."), [{"field": "name", "message": _("required")}])
        group.name = name
    if "name_en" in changes:
        group.name_en = (changes["name_en"] or "").strip() or None
    audit.record(s, "group_updated", "group", code, actor_id=_actor_id(actor),
                 detail={"code": code, "before": before, "after": {"name": group.name, "name_en": group.name_en}})
    return group


def _named_by_current_processes(s: Session, code: str) -> list[str]:
    """The processes whose newest version offers a task to the group."""
    from .workflows import process_for  # the deployment cache needs the app

    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
              .group_by(ProcessDefinition.key).subquery())
    rows = s.execute(select(ProcessDefinition.key, ProcessDefinition.deployment_id).join(
        newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.version))).all()
    return sorted(key for key, deployment_id in rows
                  if any(code in performers.named(spec)[0] for _f, _t, spec in performers.user_tasks(
                      process_for(s, deployment_id, key))))


def delete(s: Session, actor: User | None, code: str) -> None:
    _require_administrator(actor)
    group = get(s, code)
    _require_changeable(group)
    _require_manage(actor, group)
    open_tasks = s.scalar(select(func.count()).select_from(TaskCandidate).where(TaskCandidate.group_code == code))
    if open_tasks:
        raise Conflict(_("Group %(code)s still has %(n)s open tasks; they must be done or reassigned before it is "
                         "deleted.", code=code, n=open_tasks), {"open_tasks": open_tasks})
    processes = _named_by_current_processes(s, code)
    if processes:
        raise Conflict(_("The current version of %(processes)s offers tasks to group %(code)s; deploy a version "
                         "without it first.", processes=", ".join(processes), code=code), {"processes": processes})
    holders = s.scalars(select(User).join(UserGroup, UserGroup.user_id == User.id)
                        .where(UserGroup.group_code == code).order_by(User.username)).all()
    for user in holders:  # through the collection, so users already in the session forget it too
        user.group_links = [link for link in user.group_links if link.group_code != code]
    s.flush()
    s.delete(group)
    s.flush()
    audit.record(s, "group_deleted", "group", code, actor_id=_actor_id(actor),
                 detail={"code": code, "name": group.name, "members": [u.username for u in holders]})


def _member_change(s: Session, actor: User | None, code: str, username: str) -> tuple[Group, User]:
    """The group and the user, once `actor` may put that user in or out of that group."""
    _require_administrator(actor)
    group = get(s, code)
    if actor is not None and policy.may_grant(actor, groups=[group]):
        raise Forbidden(_("You may not grant or withdraw group %(code)s.", code=code))
    user = s.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None or (actor is not None and not policy.allows(actor, "manage", "user", user)):
        # One answer for both, so the form does not reveal who exists in other departments.
        raise Invalid(_("User %(username)s does not exist or is not in a department you administer.",
                        username=username), [{"field": "username", "message": _("unknown user")}])
    if actor is not None and group.builtin and actor.id == user.id:
        raise Forbidden(_("Nobody grants themselves a built-in group; ask another administrator."))
    if not assignable(group, user):
        raise Invalid(_("%(username)s is not in department %(department)s, whose group %(code)s is.",
                        username=user.username, department=group.department.code, code=code),
                      [{"field": "username", "message": _("another department")}])
    return group, user


def add_member(s: Session, actor: User | None, code: str, username: str) -> Group:
    group, user = _member_change(s, actor, code, username)
    if code in user.groups:
        raise Conflict(_("%(username)s is already a member of group %(code)s.", username=user.username, code=code))
    user.group_links.append(UserGroup(user_id=user.id, group_code=code))
    s.flush()
    audit.record(s, "group_member_added", "group", code, actor_id=_actor_id(actor),
                 detail={"code": code, "username": user.username})
    return group


def remove_member(s: Session, actor: User | None, code: str, username: str) -> Group:
    group, user = _member_change(s, actor, code, username)
    if code not in user.groups:
        raise NotFound(_("%(username)s is not a member of group %(code)s.", username=user.username, code=code))
    user.group_links = [link for link in user.group_links if link.group_code != code]
    s.flush()
    audit.record(s, "group_member_removed", "group", code, actor_id=_actor_id(actor),
                 detail={"code": code, "username": user.username})
    return group
