"""Who may do a user task: the lane (or the task's `performers` property) names them.

See docs/modelling.md for the spec language. Resolution happens when the task opens, against the
instance's data and initiator; group specs stay groups, so a member added later sees the task.
At deploy, `unresolved` refuses a spec naming a group or user that does not exist (issue 14), so a
step never goes to nobody from its first day; someone who leaves later is the run time's concern
(service/instances.py gives such a task to the platform management department).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Department, Group, User

# Chinese lane names used by the organisation's designers: data, not code.
ALIASES: dict[str, str] = json.loads(
    (Path(__file__).resolve().parent / "data" / "lane_aliases.json").read_text(encoding="utf-8"))["aliases"]

# Spec words that name people through the instance or the organisation rather than a group.
PEOPLE = frozenset({"initiator", "dept_head", "dept_admin", "system_admin"})

_PAREN = re.compile(r"[(（]\s*([^()（）]+?)\s*[)）]\s*$")


@dataclass
class Candidates:
    users: set[int] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


def lane_label(lane: str) -> str:
    """A lane's name as people read it: `部门负责人 (dept_head:department)` → `部门负责人`."""
    return _PAREN.sub("", lane).strip() or lane


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


def _parts(spec: str) -> Iterator[tuple[str, str, str]]:
    """(kind, argument, the part itself) of each comma-separated part, aliases applied."""
    for part in (p.strip() for p in spec.split(",")):
        if part:
            part = ALIASES.get(part, part)
            kind, _sep, arg = part.partition(":")
            yield kind, arg, part


def resolve(s: Session, spec: str, data: dict, initiator: User | None) -> Candidates:
    out = Candidates()
    for kind, arg, part in _parts(spec):
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
        elif kind == "system_admin":
            out.users.update(s.scalars(select(User.id).where(User.role == "system_admin", User.active.is_(True))))
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


def named(spec: str) -> tuple[set[str], set[str]]:
    """The group codes and usernames a spec names outright."""
    groups, users = set(), set()
    for kind, arg, part in _parts(spec):
        if kind == "user":
            users.add(arg)
        elif kind == "group":
            groups.add(arg)
        elif kind not in PEOPLE:
            groups.add(part)
    return groups, users


def user_tasks(process) -> Iterator[tuple[str, object, str]]:
    """(file, task spec, performer spec) of each user or manual task of a parsed process
    (engine.loader.ParsedProcess), its subprocesses included."""
    for spec in (process.spec, *process.subprocess_specs.values()):
        for task in spec.task_specs.values():
            if getattr(task, "manual", False):
                properties = dict((task.extensions or {}).get("properties") or {})
                yield getattr(spec, "file", None) or process.file, task, spec_for(task.lane, properties)


def unresolved(s: Session, processes: Iterable) -> list[dict]:
    """A problem (file, element, lane, message) for each user task whose lane or `performers`
    property names a group or a user that does not exist (a user who left counts as gone)."""
    tasks = {}
    for process in processes:
        for file, task, spec in user_tasks(process):
            tasks.setdefault((file, task.bpmn_id), (task, spec))
    wanted_groups, wanted_users = set(), set()
    for _task, spec in tasks.values():
        groups, users = named(spec)
        wanted_groups |= groups
        wanted_users |= users
    known_groups = set(s.scalars(select(Group.code).where(Group.code.in_(wanted_groups)))) if wanted_groups else set()
    # A lane named after a group's Chinese name is almost right: say which code to use.
    by_name = dict(s.execute(select(Group.name, Group.code).where(Group.name.in_(wanted_groups - known_groups))).all()) \
        if wanted_groups - known_groups else {}
    present = set(s.scalars(select(User.username).where(User.username.in_(wanted_users), User.active.is_(True)))) \
        if wanted_users else set()
    problems = []
    for (file, element), (task, spec) in tasks.items():
        by_property = bool(dict((task.extensions or {}).get("properties") or {}).get("performers"))
        where = {"task": task.bpmn_name or element, "lane": task.lane or ""}
        groups, users = named(spec)
        messages = []
        if not spec:
            messages.append(_("Task '%(task)s' names no performers: name its lane or set its 'performers' property.",
                              task=where["task"]))
        for code in sorted(groups - known_groups):
            if by_property:
                message = _("The performers of task '%(task)s' name group '%(group)s', which does not exist.",
                            group=code, **where)
            else:
                message = _("Lane '%(lane)s' (task '%(task)s') names group '%(group)s', which does not exist.",
                            group=code, **where)
            if code in by_name:
                spelling = f"{code} ({by_name[code]})"
                message += " " + _("Did you mean %(spec)s?", spec=spelling)
            messages.append(message)
        for username in sorted(users - present):
            if by_property:
                message = _("The performers of task '%(task)s' name user '%(user)s', who does not exist or has left.",
                            user=username, **where)
            else:
                message = _("Lane '%(lane)s' (task '%(task)s') names user '%(user)s', who does not exist or has left.",
                            user=username, **where)
            messages.append(message)
        problems += [{"file": file, "element": element, "lane": task.lane, "line": None, "message": m} for m in messages]
    return problems
