"""What supervisors see: where the running instances of each process stand (R-WF-3, R-SUP-1).

Everything here reads the projections (`open_tasks`, the instance row's `state`,
`active_elements`, `next_timer_at`, `waiting_messages`), never an engine state, and counts with
GROUP BY queries over indexed columns so the live overview can poll it every few seconds.

Who may supervise: system administrators and the `supervisor` and `platform_admin` groups see every
instance; a department administrator sees the instances started in their department. The admin
actions on an instance (retry, cancel, move back, reassign) follow the API's rules, see `rights`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Text, and_, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from engine.runtime import PEOPLE_KINDS

from . import audit_log, auth, policy
from .errors import Forbidden, NotFound
from .models import Department, InstanceStep, OpenTask, ProcessDefinition, ProcessInstance, User, utcnow
from .workflows import process_for

OPEN_STATES = ("running", "error")
LIST_LIMIT = 200
# Element kinds whose activity is not "an instance waiting here": a boundary event waits beside
# its task (the task is counted), a start event only while an event subprocess may trigger.
NOT_A_POSITION = ("BoundaryEvent", "StartEvent")
CONTAINERS = ("SubWorkflowTask", "CallActivity", "MultiInstanceTask")


def sees_everything(user: User) -> bool:
    return policy.widest(user, "supervise", "process_instance") == policy.ALL


def may_supervise(user: User) -> bool:
    return policy.widest(user, "supervise", "process_instance") is not None


def scope(user: User):
    """The filter on process_instances for what `user` supervises (None: everything)."""
    if sees_everything(user):
        return None
    if may_supervise(user):
        return policy.scope_filter(user, "supervise", "process_instance")
    raise Forbidden(_("Only supervisors and administrators may see the supervision views."))


def _scoped(query, user: User):
    condition = scope(user)
    return query if condition is None else query.where(condition)


def rights(user: User, row: ProcessInstance) -> set[str]:
    """The admin actions `user` may take on `row` now, by the permission table (service/policy.py)."""
    if row.state not in OPEN_STATES:
        return set()
    actions = ["cancel", "move_back", "reassign"] + (["retry"] if row.state == "error" else [])
    return {action for action in actions if policy.allows(user, action, "process_instance", row)}


def sees_data(s: Session, user: User, row: ProcessInstance) -> bool:
    """Whether the instance page shows what people filled in. Supervising is about how a process
    is handled (who, when, decisions, opinions); the business data stays with those entitled to it
    (R-ACC-3): system and platform administrators, the department's administrator, and the people
    who started the instance or acted in it."""
    if auth.is_admin_of(user, row.department_id) or "platform_admin" in user.groups or row.started_by == user.id:
        return True
    return s.scalar(select(InstanceStep.id).where(InstanceStep.instance_id == row.id,
                                                  InstanceStep.user_id == user.id).limit(1)) is not None


# -- the overview ---------------------------------------------------------------------------------

@dataclass
class ProcessSummary:
    key: str
    name: str
    latest: int
    running: int = 0
    overdue: int = 0
    incidents: int = 0


def processes(s: Session, user: User) -> list[ProcessSummary]:
    """Every deployed process (latest name and version) with its open, overdue and failed instances."""
    latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
              .group_by(ProcessDefinition.key).subquery())
    out = {d.key: ProcessSummary(d.key, d.name or d.key, d.version) for d in s.scalars(
        select(ProcessDefinition).join(latest, and_(ProcessDefinition.key == latest.c.key,
                                                    ProcessDefinition.version == latest.c.v))
        .order_by(ProcessDefinition.name, ProcessDefinition.key))}
    counts = _scoped(select(ProcessInstance.process_key, func.count(),
                            func.sum(case((ProcessInstance.state == "error", 1), else_=0)))
                     .where(ProcessInstance.state.in_(OPEN_STATES)).group_by(ProcessInstance.process_key), user)
    for key, running, failed in s.execute(counts):
        if key in out:
            out[key].running, out[key].incidents = running, int(failed or 0)
    late = _scoped(select(OpenTask.process_key, func.count(func.distinct(OpenTask.instance_id)))
                   .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
                   .where(OpenTask.due_at < utcnow()).group_by(OpenTask.process_key), user)
    for key, overdue in s.execute(late):
        if key in out:
            out[key].overdue = overdue
    return list(out.values())


def definition(s: Session, key: str, version: int | None = None) -> ProcessDefinition:
    query = select(ProcessDefinition).where(ProcessDefinition.key == key)
    query = query.where(ProcessDefinition.version == version) if version else query.order_by(
        ProcessDefinition.version.desc()).limit(1)
    found = s.scalar(query)
    if found is None:
        raise NotFound(_("Process '%(key)s' is not deployed.", key=key))
    return found


def versions(s: Session, key: str) -> list[int]:
    return list(s.scalars(select(ProcessDefinition.version).where(ProcessDefinition.key == key)
                          .order_by(ProcessDefinition.version.desc())))


@dataclass
class ElementCounts:
    element_id: str
    name: str
    count: int = 0
    overdue: int = 0
    incidents: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count, "overdue": self.overdue, "incidents": self.incidents}


def element_names(s: Session, d: ProcessDefinition) -> dict[str, tuple[str, str]]:
    """element id -> (name, kind) of the process's elements, those inside its subprocesses included
    (an embedded subprocess is drawn on the same diagram; the viewer skips ids it does not show)."""
    process = process_for(s, d.deployment_id, d.key)
    out: dict[str, tuple[str, str]] = {}
    for spec in [process.spec, *process.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            kind = type(task_spec).__name__
            # A multi-instance user task has two specs with its id; it is a person's step.
            if task_spec.bpmn_id and (task_spec.bpmn_id not in out or kind in PEOPLE_KINDS):
                out[task_spec.bpmn_id] = (task_spec.bpmn_name or task_spec.bpmn_id, kind)
    return out


def element_counts(s: Session, user: User, d: ProcessDefinition) -> list[ElementCounts]:
    """Per element of version `d`: instances waiting there, how many of them are overdue, how
    many failed there. Elements with nothing are left out."""
    names = element_names(s, d)
    out: dict[str, ElementCounts] = {}

    def at(element: str) -> ElementCounts:
        if element not in out:
            out[element] = ElementCounts(element, names.get(element, (element, ""))[0])
        return out[element]

    # People's steps: one GROUP BY over the open-task projection (ix_open_tasks_process_element).
    now = utcnow()
    tasks = _scoped(select(OpenTask.element_id, func.count(func.distinct(OpenTask.instance_id)),
                           func.count(func.distinct(case((OpenTask.due_at < now, OpenTask.instance_id)))))
                    .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
                    .where(OpenTask.process_key == d.key, ProcessInstance.version == d.version,
                           ProcessInstance.state.in_(OPEN_STATES))
                    .group_by(OpenTask.element_id), user)
    for element, waiting, overdue in s.execute(tasks):
        if element in names:
            at(element).count, at(element).overdue = waiting, overdue
    for position in _positions(s, user, d, names):
        if position.failed:
            at(position.element_id).incidents += 1
        else:
            at(position.element_id).count += 1
    return sorted(out.values(), key=lambda c: (-c.count - c.incidents, c.name))


@dataclass
class Position:
    instance_id: int
    business_key: str | None
    started_at: datetime
    element_id: str
    failed: bool
    incident: str | None = None


def _positions(s: Session, user: User, d: ProcessDefinition, names: dict, element: str | None = None,
               limit: int | None = None):
    """Where instances of version `d` stand other than at a person's step (those are the open
    tasks): a timer or message wait, a call activity, a failed step. Only the rows that can have
    one are read (ix_instances_state_key), a few columns each, never the engine state."""
    has_tasks = exists().where(OpenTask.instance_id == ProcessInstance.id)
    query = _scoped(select(ProcessInstance.id, ProcessInstance.business_key, ProcessInstance.started_at,
                           ProcessInstance.active_elements, ProcessInstance.incidents, has_tasks.label("has_tasks"))
                    .where(ProcessInstance.process_key == d.key, ProcessInstance.version == d.version,
                           ProcessInstance.state.in_(OPEN_STATES),
                           or_(ProcessInstance.state == "error", ProcessInstance.next_timer_at.is_not(None),
                               cast(ProcessInstance.waiting_messages, Text) != "[]", ~has_tasks)), user)
    query = query.order_by(ProcessInstance.id)
    for row in s.execute(query.limit(limit) if limit else query):
        messages = {i.get("element"): i.get("message") for i in row.incidents or []}
        seen: set[str] = set()
        for a in row.active_elements or []:
            eid, failed = a.get("element_id"), a.get("state") == "ERROR"
            kind = names.get(eid, ("", ""))[1]
            if eid not in names or eid in seen or kind.endswith(NOT_A_POSITION) or (element and eid != element):
                continue
            # People's steps are counted from the open tasks; a subprocess or multi-instance
            # container that has them inside is shown there rather than twice.
            if not failed and (kind in PEOPLE_KINDS or (row.has_tasks and kind.endswith(CONTAINERS))):
                continue
            seen.add(eid)
            yield Position(row.id, row.business_key, row.started_at, eid, failed, messages.get(eid))


@dataclass
class WaitingRow:
    instance_id: int
    business_key: str | None
    element_id: str
    element_name: str
    since: datetime | None
    who: str | None = None
    due_at: datetime | None = None
    overdue: bool = False
    incident: str | None = None
    department: str | None = None
    process_name: str = ""
    task_id: str | None = None


def waiting_at(s: Session, user: User, d: ProcessDefinition, element: str | None = None) -> list[WaitingRow]:
    """The instances of version `d` standing at each element (or at `element`), oldest first."""
    names = element_names(s, d)
    now = utcnow()
    rows: list[WaitingRow] = []
    query = _scoped(select(OpenTask, ProcessInstance.business_key, User.full_name)
                    .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
                    .outerjoin(User, User.id == OpenTask.assignee_id)
                    .where(OpenTask.process_key == d.key, ProcessInstance.version == d.version,
                           ProcessInstance.state.in_(OPEN_STATES)), user)
    if element:
        query = query.where(OpenTask.element_id == element)
    for task, business_key, assignee in s.execute(query.order_by(OpenTask.created_at).limit(LIST_LIMIT)):
        if task.element_id in names:
            rows.append(WaitingRow(task.instance_id, business_key, task.element_id, task.name, task.created_at,
                                   who=assignee, due_at=task.due_at,
                                   overdue=bool(task.due_at and task.due_at < now), task_id=task.id))
    for p in _positions(s, user, d, names, element, limit=LIST_LIMIT):
        rows.append(WaitingRow(p.instance_id, p.business_key, p.element_id, names[p.element_id][0], p.started_at,
                               incident=(p.incident or _("failed")) if p.failed else None))
    return rows


# -- overdue tasks and incidents ------------------------------------------------------------------

@dataclass
class Filters:
    process: str | None = None
    department: str | None = None
    assignee: str | None = None
    age_days: int | None = None
    errors: list[dict] = field(default_factory=list)

    @classmethod
    def parse(cls, args) -> Filters:
        out = cls(process=args.get("process") or None, department=args.get("department") or None,
                  assignee=(args.get("assignee") or "").strip() or None)
        age = (args.get("age") or "").strip()
        if age:
            if age.isdigit() and int(age) <= 3650:
                out.age_days = int(age)
            else:
                out.errors.append({"field": "age", "message": _("Enter a whole number of days.")})
        return out


def _filter_instances(query, s: Session, f: Filters):
    if f.process:
        query = query.where(ProcessInstance.process_key == f.process)
    if f.department:
        query = query.join(Department, Department.id == ProcessInstance.department_id).where(
            Department.code == f.department)
    return query


def overdue_tasks(s: Session, user: User, f: Filters) -> list[WaitingRow]:
    """Open tasks past their due date, most overdue first."""
    now = utcnow()
    query = _scoped(select(OpenTask, ProcessInstance, ProcessDefinition.name, User.full_name)
                    .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
                    .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                    .outerjoin(User, User.id == OpenTask.assignee_id)
                    .where(OpenTask.due_at < now, ProcessInstance.state.in_(OPEN_STATES)), user)
    query = _filter_instances(query, s, f)
    if f.assignee:
        query = query.where(User.username == f.assignee)
    if f.age_days is not None:
        query = query.where(OpenTask.due_at < now - timedelta(days=f.age_days))
    departments = dict(s.execute(select(Department.id, Department.name)).all())
    return [WaitingRow(row.id, row.business_key, task.element_id, task.name, task.created_at, who=assignee,
                       due_at=task.due_at, overdue=True, department=departments.get(row.department_id),
                       process_name=name, task_id=task.id)
            for task, row, name, assignee in s.execute(query.order_by(OpenTask.due_at).limit(LIST_LIMIT))]


def incident_instances(s: Session, user: User, f: Filters) -> list[WaitingRow]:
    """Instances stopped by an incident, oldest incident first."""
    query = _scoped(select(ProcessInstance, ProcessDefinition.name)
                    .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                    .where(ProcessInstance.state == "error"), user)
    query = _filter_instances(query, s, f)
    departments = dict(s.execute(select(Department.id, Department.name)).all())
    cutoff = utcnow() - timedelta(days=f.age_days) if f.age_days is not None else None
    out = []
    for row, name in s.execute(query.order_by(ProcessInstance.id).limit(LIST_LIMIT)):
        last = (row.incidents or [{}])[-1]
        at = _parse_time(last.get("at")) or row.started_at
        if cutoff is not None and at > cutoff:
            continue
        element = last.get("element") or ""
        name = element_names(s, s.get(ProcessDefinition, row.definition_id)).get(element, (element, ""))[0]
        out.append(WaitingRow(row.id, row.business_key, element, name,
                              at, incident=last.get("message") or _("failed"),
                              department=departments.get(row.department_id), process_name=name))
    return sorted(out, key=lambda r: r.since)


def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def supervised_instance(s: Session, user: User, instance_id: int) -> ProcessInstance:
    row = s.scalar(_scoped(select(ProcessInstance).where(ProcessInstance.id == instance_id), user))
    if row is None:
        raise NotFound(_("Process instance %(id)s not found.", id=instance_id))
    audit_log.note_read("process_instance", row.id)
    return row


def departments(s: Session) -> list[Department]:
    return list(s.scalars(select(Department).order_by(Department.code)))
