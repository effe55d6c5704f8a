"""Process instances as units of work.

Every operation reads one instance row, runs the engine, and writes — in one transaction — the
new engine state (guarded by the row's version), the history of the steps just completed, the
open-task projection and the audit record. No lock is held while the engine runs designer code:
the read, the step and the write are three phases (service/optimistic.py). Task lists and
history are read from the projections; they never deserialize an engine state.
"""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import bindparam, delete, func, insert, inspect, or_, select, text, update
from sqlalchemy.orm import Session, aliased, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from engine import codec, horizon
from engine.errors import Incident, MessageNotCaught, ScriptError, TaskNotFound, TaskNotReady
from engine.runtime import PEOPLE_KINDS, Instance, Step, UserTask
from engine.starts import begin, begin_by_message, begin_by_timer, message_starts

from . import (
    audit,
    audit_log,
    db,
    forms,
    notifications,
    optimistic,
    performers,
    policy,
    scheduler,
    substitutes,
)
from .db import in_session
from .documents import attachments
from .errors import Conflict, Forbidden, Invalid, NotFound
from .models import (
    DeploymentFile,
    InstanceStep,
    OpenTask,
    ProcessDefinition,
    ProcessInstance,
    TaskCandidate,
    User,
    UserGroup,
    utcnow,
)
from .services import UnitContext, current_unit
from .studio import catalogue
from .studio.models import ProcessModel
from .workflows import deployment_of, process_for, script_engine

# The states of an instance that has ended: done, cancelled by an administrator, withdrawn by its initiator.
ENDED = ("completed", "cancelled", "withdrawn")


@dataclass
class Outcome:
    instance: ProcessInstance
    one_time: list[dict] = field(default_factory=list)


@dataclass
class Ready:
    """A READY user task as the projection stores it. `due_at` and `data` are computed only for a
    task new to the projection (the others keep theirs)."""

    view: UserTask  # its instructions rendered
    due_at: datetime | None = None
    data: dict | None = None


@dataclass
class Projection:
    """What the write phase stores, computed from the engine before it: the designer code in here
    (instruction templates, `due` expressions) and the serialization run outside the lock."""

    state: str
    engine_state: str
    active_elements: list
    waiting_messages: list
    next_timer_at: datetime | None
    ready: dict[str, Ready]


@dataclass
class Change:
    """One instance's step in a unit: run with no lock held, written under the row's version."""

    row: ProcessInstance
    instance: Instance
    actor: User | None
    unit: UnitContext
    # The instance's open tasks (id -> due date) as read with the row; the version check on the
    # row vouches for them at write time, since every change of the set bumps the version.
    existing: dict[str, datetime | None] = field(default_factory=dict)
    new: bool = False
    step_meta: dict[str, dict] = field(default_factory=dict)
    final_state: str | None = None
    # Audit records written with the instance: (action, object type, object id, actor id, detail).
    audit: list[tuple] = field(default_factory=list)
    projection: Projection | None = None


@contextlib.contextmanager
def _in(unit: UnitContext) -> Iterator[None]:
    """Services called by the step find their unit of work (session, actor, instance) here."""
    token = current_unit.set(unit)
    try:
        yield
    finally:
        current_unit.reset(token)


def _unit_for(s: Session, actor: User | None, row: ProcessInstance) -> UnitContext:
    return UnitContext(s, actor.id if actor else None, row.id, definition_id=row.definition_id)


def latest_definition(s: Session, key: str) -> ProcessDefinition:
    return _latest(s, key)[0]


def _latest(s: Session, key: str) -> tuple[ProcessDefinition, ProcessModel | None]:
    """The latest version of `key` and its catalogue entry (who may start it), in one statement."""
    found = s.execute(select(ProcessDefinition, ProcessModel)
                      .outerjoin(ProcessModel, ProcessModel.key == ProcessDefinition.key)
                      .where(ProcessDefinition.key == key)
                      .order_by(ProcessDefinition.version.desc()).limit(1)).first()
    if found is None:
        raise NotFound(_("Process '%(key)s' is not deployed.", key=key))
    return found[0], found[1]


def start(s: Session, user: User | None, key: str, business_key: str | None = None, data: dict | None = None,
          start_event: str | None = None, message: tuple[str, dict] | None = None) -> Outcome:
    """Start the latest version of `key` by hand, through timer start event `start_event`, or by a
    `message` (name, payload); `user` None is the platform itself."""
    def attempt() -> Outcome:
        changes: list[Change] = []
        change = _begin(s, changes, user, key, business_key, data, start_event, message)
        _prepare(s, changes)
        _write_all(s, changes)
        return Outcome(change.row, change.unit.one_time)

    return optimistic.run(s, attempt)


def _begin(s: Session, changes: list[Change], user: User | None, key: str, business_key: str | None = None,
           data: dict | None = None, start_event: str | None = None,
           message: tuple[str, dict] | None = None) -> Change:
    """Read and step of a start: the new instance runs up to its first wait, added to `changes`."""
    with db.reading(s):
        definition, model = _latest(s, key)
        if (user is not None and not start_event and not message
                and not catalogue.may_start_as_modelled(user, key, model)):
            raise Forbidden(_("You may not start '%(name)s'.", name=definition.name))
        process = process_for(s, definition.deployment_id, key)
        row = ProcessInstance(
            id=_new_instance_id(s),
            definition_id=definition.id,
            process_key=key,
            version=definition.version,
            business_key=business_key,
            started_by=user.id if user else None,
            department_id=user.department_id if user else None,
            engine_state="",
            serializer_version=codec.serializer_version(),
        )
        unit = _unit_for(s, user, row)
        initial = dict(data or {})
        if user is not None:
            initial["initiator"] = user.username  # never taken from start data
            initial["initiator_name"] = user.full_name  # what instructions show people
    # A service the first steps call finds the row in the session (and writes it with its own
    # writes, in the transaction it opens); otherwise it is written in the write phase.
    s.add(row)
    with _in(unit):
        if start_event:
            instance = begin_by_timer(process, script_engine(), start_event)
        elif message:
            instance = begin_by_message(process, script_engine(), message[0], message[1])
        else:
            instance = begin(process, script_engine(), initial)
    if inspect(row).pending:
        s.expunge(row)  # so later reads of this unit (routing its messages) need no transaction
    change = Change(row, instance, user, unit, new=True)
    change.audit.append(("instance_started", "process_instance", row.id, unit.actor_id,
                         {"process_key": key, "version": definition.version, "business_key": business_key}))
    changes.append(change)
    return change


# SQLite has no sequence: ids are drawn from a counter row in a transaction of their own, a
# single statement under the write lock for well under a millisecond, so two processes (two web
# servers, a worker) never draw the same one. It starts past the highest id already there.
_DRAW_SQLITE = text(
    "INSERT INTO id_counters (name, value) VALUES ('process_instances', "
    "(SELECT coalesce(max(id), 0) + 1 FROM process_instances)) "
    "ON CONFLICT (name) DO UPDATE SET value = max(value, (SELECT coalesce(max(id), 0) FROM process_instances)) + 1 "
    "RETURNING value")


def _new_instance_id(s: Session) -> int:
    """The new instance's id, known before its first step: services that step calls look the row
    up and write the id (audit, notifications), and the row is written only after the step."""
    if s.bind.dialect.name == "postgresql":
        return s.scalar(text("SELECT nextval(pg_get_serial_sequence('process_instances', 'id'))"))
    return db.draw(s, _DRAW_SQLITE)


_INSTANCE = select(ProcessInstance).where(ProcessInstance.id == bindparam("instance_id"))


def _load(s: Session, instance_id: int, for_update: bool = True) -> ProcessInstance:
    query, options = _as_read(s, _INSTANCE, for_update)
    row = s.scalar(query, {"instance_id": instance_id}, execution_options=options)
    if row is None:
        raise NotFound(_("Process instance %(id)s not found.", id=instance_id))
    audit_log.note_read("process_instance", row.id)
    return row


_FRESH = {"populate_existing": True}


def _as_read(s: Session, query, for_update: bool = True) -> tuple[Any, dict]:
    """A query of the instance row as a unit's read phase needs it, and its execution options.
    The options go to the call, not the statement: a statement copied per call makes SQLAlchemy
    compute its cache key again each time, which cost more than the read (issue 16)."""
    if optimistic.optimistic():
        # What the session remembers from earlier in the request may be stale by now; the write
        # checks the version read here.
        return query, _FRESH
    if for_update and s.bind.dialect.name == "postgresql":
        # Inline in a transaction that has written: serialise work on the instance as before.
        return query.with_for_update(of=ProcessInstance), {}
    return query, {}


@dataclass
class _Read:
    """What the read phase of a step on an existing instance found."""

    row: ProcessInstance
    process: Any
    existing: dict[str, datetime | None]
    actor: User | None
    unit: UnitContext

    def change(self) -> Change:
        """Deserialized — outside any transaction — into a Change to step."""
        instance = Instance.load(self.process, self.row.engine_state, script_engine())
        return Change(self.row, instance, self.actor, self.unit, existing=self.existing)


def _read(s: Session, instance_id: int, actor: User | None) -> _Read:
    """The instance's row, process and open tasks, and the unit's context. Inside `db.reading`:
    after a lost race the actor is read again there too, not later under a lock."""
    row = _load(s, instance_id)
    existing = dict(s.execute(select(OpenTask.id, OpenTask.due_at).where(OpenTask.instance_id == row.id)).all())
    return _read_of(s, row, existing, actor)


def _read_of(s: Session, row: ProcessInstance, existing: dict[str, datetime | None], actor: User | None) -> _Read:
    process = process_for(s, deployment_of(s, row.definition_id), row.process_key)
    return _Read(row, process, existing, actor, _unit_for(s, actor, row))


def _engine_instance(s: Session, row: ProcessInstance) -> Instance:
    process = process_for(s, deployment_of(s, row.definition_id), row.process_key)
    return Instance.load(process, row.engine_state, script_engine())


def may_complete(user: User, task: OpenTask) -> bool:
    """Its assignee, or while nobody has claimed it one of its candidates (the policy's `own`)."""
    return policy.allows(user, "complete", "task", task)


def open_task(s: Session, task_id: str) -> OpenTask:
    task = s.get(OpenTask, str(task_id), options=[joinedload(OpenTask.candidates)])
    if task is None:
        raise NotFound(_("Task not found or already completed."))
    return task


def form_schema(s: Session, task: OpenTask) -> dict:
    text = None
    if task.form:
        instance = s.get(ProcessInstance, task.instance_id)
        text = s.scalar(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id == deployment_of(s, instance.definition_id),
            DeploymentFile.kind == "form", DeploymentFile.name == task.form))
    return forms.task_schema(text, task.approval)


def complete(s: Session, user: User, task_id: str, data: dict[str, Any]) -> Outcome:
    return optimistic.run(s, lambda: _complete(s, user, task_id, data))


def complete_for_applicant(s: Session, task_id: str, data: dict[str, Any]) -> Outcome:
    """Complete an applicant's task for someone without an account: the holder of a public
    application's tracking code (service/applications.py checks the code and the task first)."""
    return optimistic.run(s, lambda: _complete(s, None, task_id, data))


_SIBLING = aliased(OpenTask)
# Built once: an aliased entity made per call costs more than the statement's execution.
_TASK_TO_COMPLETE = (select(OpenTask, ProcessInstance, _SIBLING.id, _SIBLING.due_at)
                     .join(ProcessInstance, ProcessInstance.id == OpenTask.instance_id)
                     .join(_SIBLING, _SIBLING.instance_id == OpenTask.instance_id)
                     .where(OpenTask.id == bindparam("task_id"))
                     .options(joinedload(OpenTask.candidates)))


def _task_to_complete(s: Session, task_id: str) -> tuple[OpenTask, ProcessInstance, dict[str, datetime | None]]:
    """The task with its candidates, its instance and the instance's open tasks (id -> due date),
    in one statement: a completion's whole read of the database."""
    query, options = _as_read(s, _TASK_TO_COMPLETE)
    rows = s.execute(query, {"task_id": str(task_id)}, execution_options=options).unique().all()
    if not rows:
        # Completed tasks leave the projection; say so plainly if the task ever existed.
        done = s.scalar(select(InstanceStep.id).where(InstanceStep.task_id == str(task_id)).limit(1))
        if done is not None:
            raise Conflict(_("This task has already been completed."))
        raise NotFound(_("Task not found or already completed."))
    task, row = rows[0][0], rows[0][1]
    audit_log.note_read("process_instance", row.id)
    return task, row, {sibling_id: due for _task, _row, sibling_id, due in rows}


def _complete(s: Session, user: User | None, task_id: str, data: dict[str, Any]) -> Outcome:
    """`user` None: an applicant without an account, whose right the caller has checked."""
    with db.reading(s):
        task, row, existing = _task_to_complete(s, task_id)
        if user is not None and not may_complete(user, task):
            raise Forbidden(_("This task is not assigned to you."))
        schema = form_schema(s, task)
        forms.validate(schema, data, task.approval, s)
        attachments.check(s, user, schema, data)
        read = _read_of(s, row, existing, user)
    row = read.row
    if row.state not in ("running", "error"):
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    change = read.change()
    with _in(change.unit):
        try:
            step = change.instance.complete(task.id, data)
        except TaskNotReady:
            raise Conflict(_("This task has already been completed.")) from None
        except TaskNotFound:
            raise NotFound(_("Task not found or already completed.")) from None
    actor_id = change.unit.actor_id
    # Any form's decision and opinion are the step's record, whether or not its designer marked
    # the task an Inkless approval: a studio diagram's return reason must reach the history.
    decision, opinion = (_text(data.get(name)) for name in ("decision", "opinion"))
    decision = decision[:16] if decision else None  # the history column holds a short code
    change.step_meta = {step.task_id: {"user_id": actor_id, "data": data, "decision": decision,
                                       "opinion": opinion}}
    detail = {"instance": row.id, "element": task.element_id, "decision": decision}
    if user is None:
        detail["by"] = "applicant"  # a tracking-code holder, who has no account
    change.audit.append(("task_completed", "task", task.id, actor_id, detail))
    changes = _prepare(s, [change])
    _write_all(s, changes)
    return Outcome(row, change.unit.one_time)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def claim(s: Session, user: User, task_id: str, release: bool = False) -> OpenTask:
    """Take an open task offered to a group, or give it back. The UPDATE decides: of several
    candidates claiming at once exactly one changes the row; the others are told who has it."""
    task = open_task(s, task_id)
    if release:
        if task.assignee_id != user.id or not _assign(s, task, None, expected=user.id):
            raise Forbidden(_("This task is not assigned to you."))
    else:
        if task.assignee_id == user.id:
            return task
        if task.assignee_id is None and not may_complete(user, task):
            raise Forbidden(_("This task is not assigned to you."))
        if task.assignee_id is not None or not _assign(s, task, user.id, expected=None):
            holder = s.get(User, task.assignee_id) if task.assignee_id else None
            if holder is None:
                raise Conflict(_("This task has already been claimed by someone else."))
            raise Conflict(_("This task has already been claimed by %(name)s.", name=holder.full_name))
    audit.record(s, "task_released" if release else "task_claimed", "task", task_id, actor_id=user.id)
    return task


def _assign(s: Session, task: OpenTask, assignee_id: int | None, expected: int | None) -> bool:
    """Set the task's assignee if it still is `expected`; else read who it is now."""
    claimed_at = utcnow() if assignee_id is not None else None
    holder = OpenTask.assignee_id.is_(None) if expected is None else OpenTask.assignee_id == expected
    changed = s.execute(update(OpenTask).where(OpenTask.id == task.id, holder)
                        .values(assignee_id=assignee_id, claimed_at=claimed_at)
                        .execution_options(synchronize_session=False)).rowcount
    if changed:
        set_committed_value(task, "assignee_id", assignee_id)
        set_committed_value(task, "claimed_at", claimed_at)
    else:
        s.refresh(task)
    return bool(changed)


def deliver_message(s: Session, user: User | None, name: str, payload: dict | None,
                    business_key: str | None = None, correlation: dict | None = None) -> Outcome:
    """Deliver a message to the one running instance that waits for it (and matches)."""
    def attempt() -> Outcome:
        changes: list[Change] = []
        change = _deliver(s, changes, user, name, payload, business_key, correlation)
        if change is None:
            raise NotFound(_("No running instance waits for message '%(name)s'.", name=name))
        _prepare(s, changes)
        _write_all(s, changes)
        return Outcome(change.row, change.unit.one_time)

    return optimistic.run(s, attempt)


def _deliver(s: Session, changes: list[Change], user: User | None, name: str, payload: dict | None,
             business_key: str | None = None, correlation: dict | None = None) -> Change | None:
    """Read and step of a delivery: the first instance, by id, that waits for `name` (and matches)
    gets it; else the process that a message `name` starts is started. The instances already
    stepped in this unit (`changes`) are asked in memory, as they stand now."""
    query = select(ProcessInstance.id).where(
        ProcessInstance.state == "running",
        func.cast(ProcessInstance.waiting_messages, _text_type()).like(f'%"{_like_escape(name)}"%', escape="\\"),
    ).order_by(ProcessInstance.id)
    if business_key:
        query = query.where(ProcessInstance.business_key == business_key)
    with db.reading(s):
        found = set(s.scalars(query))
    known = {c.row.id: c for c in changes}
    here = {i for i, c in known.items() if c.final_state is None and not c.instance.completed
            and not c.instance.failed and name in c.instance.waiting_messages()
            and (not business_key or c.row.business_key == business_key)}
    for instance_id in sorted((found - set(known)) | here):
        change = known.get(instance_id)
        if change is None:
            with db.reading(s):
                read = _read(s, instance_id, user)
            if read.row.state != "running":
                continue
            change = read.change()
        if correlation and not _correlates(change.instance.workflow.correlations, correlation):
            continue
        with _in(change.unit):
            try:
                change.instance.deliver(name, payload)
            except MessageNotCaught:
                continue
        if instance_id not in known:
            changes.append(change)
        change.audit.append(("message_delivered", "process_instance", instance_id, change.unit.actor_id,
                             {"message": name}))
        return change
    if business_key:
        return None
    with db.reading(s):
        key = _process_started_by(s, name)
    if key is None:
        return None
    return _begin(s, changes, user, key, message=(name, payload or {}))


def _process_started_by(s: Session, name: str) -> str | None:
    """The deployed process (latest versions only) with a message start event for `name`."""
    newest = select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v")).group_by(
        ProcessDefinition.key).subquery()
    rows = s.execute(select(ProcessDefinition.key, ProcessDefinition.deployment_id).join(
        newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.v))
        .order_by(ProcessDefinition.key)).all()
    for key, deployment_id in rows:
        if name in message_starts(process_for(s, deployment_id, key)):
            return key
    return None


# Messages routed in one unit at most: two processes that answer each other's message forever
# would otherwise never let the unit end.
MAX_ROUTED = 100


def _route(s: Session, changes: list[Change]) -> None:
    """Messages the steps threw go to the instance waiting for them, or start the process that
    begins with them, in the same unit — stepped now, before anything is written, so the
    receivers' designer code runs outside the lock too."""
    routed = 0
    while True:
        sender = next((c for c in changes if c.instance.outbox), None)
        if sender is None:
            return
        events, sender.instance.outbox = sender.instance.outbox, []
        for event in events:
            name = getattr(event.event_definition, "name", None)
            if not name:
                continue
            routed += 1
            if routed > MAX_ROUTED:
                raise Conflict(_("More than %(n)s messages passed between instances in one step; "
                                 "the processes keep answering each other.", n=MAX_ROUTED))
            payload = event.payload if isinstance(event.payload, dict) else {"value": event.payload}
            target = _deliver(s, changes, None, name, payload)
            if target is None:
                sender.audit.append(("message_undelivered", "process_instance", sender.row.id, None, {"message": name}))
            else:
                sender.audit.append(("message_sent", "process_instance", sender.row.id, None,
                                     {"message": name, "to": target.row.id}))


def _correlates(current: dict, wanted: dict) -> bool:
    values = {k: v for props in current.values() for k, v in (props or {}).items()}
    return any(values.get(k) == v for k, v in wanted.items())


def _text_type():
    from sqlalchemy import Text

    return Text


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def start_by_timer(s: Session, key: str, element: str):
    """A timer start event is due: start one instance of the latest version (system initiator)."""
    with db.reading(s):
        try:
            definition = latest_definition(s, key)
        except NotFound:
            return None
        process = process_for(s, definition.deployment_id, key)
    start(s, None, key, start_event=element)
    return process


def fire_timers(s: Session, instance_id: int) -> bool:
    """Fire the instance's due timers (boundary escalations, waits) as one unit of work; False
    when the instance no longer runs (its timer job is left over)."""
    def attempt() -> bool:
        with db.reading(s):
            read = _read(s, instance_id, None)
        if read.row.state != "running":
            return False
        change = read.change()
        with _in(change.unit):
            change.instance.fire_due_timers()
        if change.instance.steps:
            change.audit.append(("timers_fired", "process_instance", instance_id, None,
                                 {"elements": [st.element_id for st in change.instance.steps]}))
        changes = _prepare(s, [change])
        _write_all(s, changes)
        return True

    return optimistic.run(s, attempt)


def mark_overdue(s: Session, task: OpenTask) -> None:
    """A task passed its due date: flag it and tell whoever may do it (R-WF-2)."""
    task.overdue = True
    notifications.notify_task(s, task, "overdue")
    audit.record(s, "task_overdue", "task", task.id, detail={"instance": task.instance_id, "element": task.element_id})


def retry(s: Session, user: User, instance_id: int, reason: str, data: dict | None = None) -> Outcome:
    """Run an instance's failed step again (after its cause was fixed), with an audited reason."""
    def attempt() -> Outcome:
        with db.reading(s):
            read = _read(s, instance_id, user)
        row = read.row
        if row.state != "error":
            raise Conflict(_("The process instance is %(state)s.", state=row.state))
        change = read.change()
        with _in(change.unit):
            change.instance.retry(data)
        change.audit.append(("instance_retried", "process_instance", row.id, user.id, {"reason": reason}))
        changes = _prepare(s, [change])
        row.incidents = []
        _write_all(s, changes)
        return Outcome(row, change.unit.one_time)

    return optimistic.run(s, attempt)


def reassign(s: Session, user: User, task_id: str, username: str, reason: str) -> OpenTask:
    """Give an open task to another person (admin action, audited)."""
    task = open_task(s, task_id)
    target = s.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if target is None:
        raise NotFound(_("User %(name)s not found.", name=username))
    previous = task.assignee_id
    task.assignee_id = target.id
    audit.record(s, "task_reassigned", "task", task.id, actor_id=user.id,
                 detail={"from": previous, "to": target.id, "reason": reason, "instance": task.instance_id})
    notifications.notify_task(s, task, "escalation")
    return task


def delegate(s: Session, user: User, task_id: str, username: str, reason: str) -> OpenTask:
    """Hand a task of mine to a colleague who may do it as well (they could claim it: the same
    candidates), with a reason (issue 17, R-WF-2); audited, and told to them."""
    task = open_task(s, task_id)
    if not may_complete(user, task):
        raise Forbidden(_("This task is not assigned to you."))
    reason = (reason or "").strip()
    target = s.scalar(select(User).where(User.username == (username or "").strip(), User.active.is_(True)))
    problem = None
    if target is None or target.id == user.id:
        problem = _("choose a colleague other than yourself")
    elif not any(c.user_id == target.id or (c.group_code is not None and c.group_code in target.groups)
                 for c in task.candidates):
        problem = _("%(name)s may not do this task", name=target.full_name)
    if problem:
        raise Invalid(_("The task cannot be handed over."), [{"field": "username", "message": problem}])
    if not reason:
        raise Invalid(_("The task cannot be handed over."), [{"field": "reason", "message": _("required")}])
    previous = task.assignee_id
    if not _assign(s, task, target.id, expected=previous):
        raise Conflict(_("Someone else changed this task in the meantime; reload and try again."))
    audit.record(s, "task_delegated", "task", task.id, actor_id=user.id,
                 detail={"from": user.id, "to": target.id, "reason": reason[:2000], "instance": task.instance_id})
    notifications.notify_task(s, task, "task")
    return task


def delegates_for(s: Session, user: User, task: OpenTask) -> list[User]:
    """Whom `user` may hand `task` to: its other active candidates, named or through a group."""
    named = {c.user_id for c in task.candidates if c.user_id}
    groups = {c.group_code for c in task.candidates if c.group_code}
    who = User.id.in_(named)
    if groups:
        who = or_(who, User.id.in_(select(UserGroup.user_id).where(UserGroup.group_code.in_(groups))))
    return list(s.scalars(select(User).where(who, User.active.is_(True), User.id != user.id)
                          .order_by(User.full_name, User.username)))


def earlier_steps(s: Session, row: ProcessInstance) -> list[tuple[str, str]]:
    """The user tasks `row` could move back to (element id, name), nearest first."""
    if row.state not in ("running", "error"):
        return []
    return _engine_instance(s, row).earlier_steps()


def move_back(s: Session, user: User, instance_id: int, element_id: str, reason: str) -> Outcome:
    """Move the token back to an earlier user task (admin action): that task opens again, what
    came after it is discarded (open tasks, deadlines, incidents). History keeps everything and
    gains a "moved_back" row naming the step, the actor and the reason; the audit log too."""
    def attempt() -> Outcome:
        with db.reading(s):
            read = _read(s, instance_id, user)
            row = read.row
            policy.authorize(user, "move_back", "process_instance", row)
        if row.state not in ("running", "error"):
            raise Conflict(_("The process instance is %(state)s.", state=row.state))
        change = read.change()
        left = [a["element_id"] for a in row.active_elements or []]
        with _in(change.unit):
            try:
                task_id = change.instance.move_back(element_id)
            except TaskNotFound:
                raise Invalid(_("The instance cannot move back to '%(element)s'.", element=element_id),
                              [{"field": "element_id", "message": _("not an earlier step of this instance")}]) from None
        change.audit.append(("instance_moved_back", "process_instance", row.id, user.id,
                             {"to": element_id, "from": left, "reason": reason}))
        changes = _prepare(s, [change])
        ready = change.projection.ready.get(task_id)
        # Added before the steps' rows, so it keeps its place in the history.
        s.add(InstanceStep(instance_id=row.id, element_id=element_id, name=ready.view.name if ready else None,
                           kind="moved_back", task_id=task_id, user_id=user.id, completed_at=utcnow(),
                           opinion=reason))
        if not change.instance.failed:
            row.incidents = []
        _write_all(s, changes)
        return Outcome(row, change.unit.one_time)

    return optimistic.run(s, attempt)


def cancel(s: Session, user: User, instance_id: int, reason: str | None) -> Outcome:
    return _end(s, user, instance_id, reason, "cancelled")


def withdraw(s: Session, user: User, instance_id: int, reason: str) -> Outcome:
    """The initiator takes back their own request (issue 17, R-WF-2): with a reason, while no
    reviewer has decided on what they last submitted (a return hands it back to them, so it may be
    withdrawn again). It ends as withdrawn; its open tasks go, and so do the notices about them."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(_("A reason is required."), [{"field": "reason", "message": _("required")}])
    return _end(s, user, instance_id, reason[:2000], "withdrawn")


def withdraw_problem(s: Session, user: User, row: ProcessInstance) -> str | None:
    """Why `user` may not withdraw `row` now, or None."""
    if row.started_by != user.id:
        return _("Only the person who started a request may withdraw it.")
    if row.state not in ("running", "error"):
        return _("The request has ended already.")
    steps = s.execute(select(InstanceStep.user_id, InstanceStep.decision).where(InstanceStep.instance_id == row.id)
                      .order_by(InstanceStep.id)).all()
    last_mine = max((i for i, (who, _decision) in enumerate(steps) if who == user.id), default=-1)
    if any(who not in (None, user.id) and decision not in (None, "return") for who, decision in steps[last_mine + 1:]):
        return _("A reviewer has decided on this request already; it can no longer be withdrawn.")
    return None


def _end(s: Session, user: User, instance_id: int, reason: str | None, state: str) -> Outcome:
    def attempt() -> Outcome:
        with db.reading(s):
            read = _read(s, instance_id, user)
            problem = withdraw_problem(s, user, read.row) if state == "withdrawn" else None
        row = read.row
        if row.state not in ("running", "error"):
            raise Conflict(_("The process instance is %(state)s.", state=row.state))
        if problem:
            raise (Forbidden if row.started_by != user.id else Conflict)(problem)
        change = read.change()
        change.instance.cancel()
        change.final_state = state
        action = "instance_withdrawn" if state == "withdrawn" else "instance_cancelled"
        change.audit.append((action, "process_instance", row.id, user.id, {"reason": reason}))
        changes = _prepare(s, [change])
        if state == "withdrawn":
            # In the history, where the request's timeline shows who withdrew it and why.
            s.add(InstanceStep(instance_id=row.id, element_id="withdrawn", name=None, kind="withdrawn",
                               task_id=str(uuid.uuid4()), user_id=user.id, completed_at=utcnow(), opinion=reason))
        _write_all(s, changes)
        return Outcome(row)

    return optimistic.run(s, attempt)


def _persist(s: Session, row: ProcessInstance, instance: Instance, actor: User | None, unit: UnitContext,
             step_meta: dict[str, dict] | None = None, final_state: str | None = None) -> None:
    """Project and write one instance's step in the caller's transaction (studio/migrate.py)."""
    existing = dict(s.execute(select(OpenTask.id, OpenTask.due_at).where(OpenTask.instance_id == row.id)).all())
    change = Change(row, instance, actor, unit, existing=existing, step_meta=step_meta or {}, final_state=final_state)
    changes = [change]
    _prepare(s, changes)
    _write_all(s, changes)


def _prepare(s: Session, changes: list[Change]) -> list[Change]:
    """The rest of the step phase: route the messages the steps threw (the instances they reach
    step now too and join `changes`), then compute each projection — all before the write."""
    if any(c.instance.outbox for c in changes):
        _route(s, changes)
    for change in changes:
        change.projection = _project(change)
    return changes


def _project(change: Change) -> Projection:
    instance = change.instance
    # Serialized first: compacting drops finished branches the projection does not read.
    engine_state = instance.dumps(keep_history=current_app.config["INKLESS"].keep_history)
    if change.final_state:
        state = change.final_state
    elif instance.completed:
        state = "completed"
    elif instance.failed:
        state = "error"
    else:
        state = "running"
    if state not in ("running", "error"):
        return Projection(state, engine_state, [], [], None, {})
    ready = {}
    for view in instance.user_tasks():
        task = Ready(view)
        if view.id not in change.existing:
            task.due_at, task.data = _due_at(instance, view), _json_safe(view.data)
        ready[view.id] = task
    return Projection(state, engine_state, instance.active_elements(), instance.waiting_messages(),
                      instance.next_timer_due(), ready)


# Statements of every write phase, built once (building one costs about what running it does).
# Core statements on the tables, not the ORM's bulk paths: nothing in the unit reads these rows
# back, and the ORM's bulk machinery cost more than the statements themselves (issue 16). Every
# history row has the same keys, so the rows are one executemany batch.
# On PostgreSQL their answers come later (db.pipelined): nothing reads their results.
_LATER = {db.ANSWER_LATER: True}
_INSERT_STEPS = insert(InstanceStep.__table__).inline().execution_options(**_LATER)
_DELETE_TASKS = delete(OpenTask.__table__).where(OpenTask.__table__.c.id.in_(bindparam("ids", expanding=True)))
# PostgreSQL: the tasks go and their notifications stop being news in one round trip.
_DROP_TASKS = notifications.done_with(_DELETE_TASKS.returning(OpenTask.__table__.c.id).cte("gone")
                                      ).execution_options(**_LATER)


def _write_all(s: Session, changes: list[Change]) -> None:
    for change in changes:
        _write(s, change)


def _write(s: Session, change: Change) -> None:
    """The write phase for one instance: its row first — the UPDATE checks the version read in
    the read phase — then history, open tasks, its timer job and the unit's audit records."""
    row, instance, projection = change.row, change.instance, change.projection
    if change.new and row not in s:
        s.add(row)
    had_timer_job = scheduler.has_timer_job(row)
    now = utcnow()
    values = {"engine_state": projection.engine_state, "serializer_version": codec.serializer_version(),
              "state": projection.state, "active_elements": projection.active_elements,
              "waiting_messages": projection.waiting_messages, "next_timer_at": projection.next_timer_at}
    if instance.incidents:
        values["incidents"] = list(row.incidents or []) + [dict(i.as_dict(), at=now.isoformat())
                                                           for i in instance.incidents]
    if projection.state in ENDED:
        values["ended_at"] = now
    with db.pipelined(s):
        optimistic.write_first(s, row, values)  # answered at once (its row count is the version check)
        if instance.steps:
            # A user task's ready and claim times live on its open task, which is about to be dropped;
            # the task being completed is already in the session, so this usually reads nothing.
            lives = _task_lives(s, [st.task_id for st in instance.steps if st.kind in PEOPLE_KINDS])
            # One (executemany) INSERT; nothing in the unit reads the new rows' ids. Rows added before
            # (move_back's "moved_back") were flushed with the instance row, so keep their place.
            s.execute(_INSERT_STEPS,
                      [_history_row(row, step, change.step_meta.get(step.task_id, {}),
                                    lives.get(step.task_id, (None, None))) for step in instance.steps])
        _sync_open_tasks(s, row, projection.ready, change.existing)
        _tell_initiator(s, row, change)
        scheduler.sync_instance(s, row, had_timer_job)
    for action, object_type, object_id, actor_id, detail in change.audit:
        audit.record(s, action, object_type, object_id, actor_id=actor_id, detail=detail)
    s.flush()


def _tell_initiator(s: Session, row: ProcessInstance, change: Change) -> None:
    """R-WF-2: the initiator hears of a reviewer's decision on their request and of its end (a
    return reaches them as the amendment task itself)."""
    if row.started_by is None:
        return
    decisions = [(step, meta) for step in change.instance.steps
                 if (meta := change.step_meta.get(step.task_id)) and meta.get("decision") in ("approve", "reject")]
    by = {step.task_id: _full_name(s, meta.get("user_id")) for step, meta in decisions}
    if change.projection.state == "completed":
        if decisions and decisions[-1][1]["decision"] == "reject":
            step = decisions[-1][0]
            notifications.tell_initiator(s, row, "rejected", step.name or step.element_id, by[step.task_id])
            return
        ends = [st for st in change.instance.steps if st.kind.endswith("EndEvent") and st.name]
        last = ends[-1] if ends else change.instance.steps[-1] if change.instance.steps else None
        notifications.tell_initiator(s, row, "finished", (last.name or last.element_id) if last else "",
                                     by.get(decisions[-1][0].task_id) if decisions else None)
        return
    for step, meta in decisions:
        if meta.get("user_id") != row.started_by:
            kind = "approved" if meta["decision"] == "approve" else "rejected"
            notifications.tell_initiator(s, row, kind, step.name or step.element_id, by[step.task_id])


def _full_name(s: Session, user_id: int | None) -> str | None:
    user = s.get(User, user_id) if user_id else None
    return user.full_name if user else None


def _task_lives(s: Session, task_ids: list[str]) -> dict[str, tuple]:
    """(ready, claimed) times of the open tasks behind these steps: from the session, else one query."""
    lives, missing = {}, []
    for task_id in task_ids:
        task = in_session(s, OpenTask, task_id)
        if task is not None:
            lives[task_id] = (task.created_at, task.claimed_at)
        else:
            missing.append(task_id)
    if missing:
        lives.update({t.id: (t.created_at, t.claimed_at) for t in s.execute(
            select(OpenTask.id, OpenTask.created_at, OpenTask.claimed_at).where(OpenTask.id.in_(missing)))})
    return lives


def _history_row(row: ProcessInstance, step: Step, meta: dict, life: tuple) -> dict:
    started, claimed = life
    return {
        "instance_id": row.id,
        "definition_id": row.definition_id,
        "started_at": started,
        "claimed_at": claimed,
        "duration_s": (step.completed_at - started).total_seconds() if started else None,
        "wait_s": (claimed - started).total_seconds() if started and claimed else None,
        "element_id": step.element_id,
        "name": step.name,
        "kind": step.kind,
        "task_id": step.task_id,
        "user_id": meta.get("user_id"),
        "completed_at": step.completed_at,
        "decision": meta.get("decision"),
        "opinion": meta.get("opinion"),
        "data": meta.get("data"),
    }


def _sync_open_tasks(s: Session, row: ProcessInstance, ready: dict[str, Ready],
                     existing: dict[str, datetime | None]) -> None:
    gone = set(existing) - set(ready)
    if gone:
        # task_candidates and task_drafts rows go with their task (ON DELETE CASCADE; SQLite has
        # foreign_keys=ON). The session forgets the tasks it holds and, by the relationship's
        # expunge cascade, their loaded candidates, so nothing flushes a deleted row and a new
        # candidate row that gets a freed id is not mistaken for the old one.
        for task_id in gone:
            task = in_session(s, OpenTask, task_id)
            if task is not None:
                s.expunge(task)
        if s.bind.dialect.name == "postgresql":
            s.execute(_DROP_TASKS, {"ids": list(gone), "read_at": utcnow()})
        else:
            s.execute(_DELETE_TASKS, {"ids": list(gone)})
            notifications.mark_done(s, gone)
        # Only a task with a due date has a deadline job (see below).
        scheduler.drop_deadlines(s, {task_id for task_id in gone if existing[task_id] is not None})
    initiator = s.get(User, row.started_by) if row.started_by else None
    added: list[OpenTask] = []
    for task_id, new in ready.items():
        if task_id in existing:
            continue
        view = new.view
        spec = performers.spec_for(view.lane, view.properties)
        who = performers.resolve(s, spec, view.data, initiator)
        # People away now are covered by their substitutes (not the initiator: their own request).
        away = substitutes.covering(s, who.users - {row.started_by})
        who.users |= set(away.values())
        task = OpenTask(
            id=task_id,
            instance_id=row.id,
            process_key=row.process_key,  # the instance's process, also for tasks inside subprocesses
            element_id=view.element_id,
            name=view.name,
            lane=view.lane,
            form=view.form,
            ui_form=view.ui_form,
            approval=forms.is_approval(view.properties),
            instructions=view.instructions,
            instructions_en=view.instructions_en or None,
            data=new.data,
            due_at=new.due_at,
        )
        task.candidates = [TaskCandidate.of(task, user_id=u) for u in sorted(who.users)] + [
            TaskCandidate.of(task, group_code=g) for g in sorted(who.groups)]
        added.append(task)
        for absent, substitute in sorted(away.items()):
            audit.record(s, "task_offered_to_substitute", "task", task.id,
                         detail={"from": absent, "to": substitute, "instance": row.id})
        if task.due_at is not None:
            # A task new to the projection has no job yet (its id is new, or its job was dropped
            # when it left), so only a due date needs one.
            scheduler.sync_deadline(s, task.id, task.due_at)
        returned = view.data.get("decision") == "return"
        reached = notifications.notify_task(s, task, "returned" if returned else "task")
        # An applicant without an account (public application) acts through a tracking code.
        if not reached and not (initiator is None and "initiator" in spec):
            _nobody_can_take(s, row, task, spec)
    _insert_tasks(s, added)


_INSERT_TASKS = insert(OpenTask.__table__).inline().execution_options(**_LATER)
_INSERT_CANDIDATES = insert(TaskCandidate.__table__).inline().execution_options(**_LATER)
_TASK_COLUMNS = tuple(c.key for c in OpenTask.__table__.columns)
# What a flush would have filled in for a column left None (an executemany sends every key).
_TASK_DEFAULTS = {c.key: c.default for c in OpenTask.__table__.columns if c.default is not None}
_CANDIDATE_COLUMNS = tuple(c.key for c in TaskCandidate.__table__.columns if c.key not in ("id", "task_id"))


def _task_row(task: OpenTask) -> dict:
    row = {key: getattr(task, key) for key in _TASK_COLUMNS}
    for key, default in _TASK_DEFAULTS.items():
        if row[key] is None:
            row[key] = default.arg({}) if default.is_callable else default.arg
    return row


def _insert_tasks(s: Session, tasks: list[OpenTask]) -> None:
    """New open tasks and their candidates as two Core statements. The objects never join the
    session: nothing in the unit reads them back, and the ORM's flush of them cost more than the
    statements (issue 16); a later read in the session loads the rows."""
    if not tasks:
        return
    s.execute(_INSERT_TASKS, [_task_row(task) for task in tasks])
    candidates = [dict({key: getattr(c, key) for key in _CANDIDATE_COLUMNS}, task_id=task.id)
                  for task in tasks for c in task.candidates]
    if candidates:
        s.execute(_INSERT_CANDIDATES, candidates)


# Who gets a task whose performers resolve to nobody active (R-WF-2: no step may stall unseen).
FALLBACK_GROUP = "platform_admin"


def _nobody_can_take(s: Session, row: ProcessInstance, task: OpenTask, spec: str) -> None:
    """The performers name nobody who can act (a department without a head, an empty group, a
    deactivated user): rather than a task that no inbox shows, the platform management department
    gets it, told why, and the audit log keeps the performer spec that failed."""
    task.candidates = [TaskCandidate.of(task, group_code=FALLBACK_GROUP)]
    audit.record(s, "task_unassigned", "task", task.id,
                 detail={"instance": row.id, "element": task.element_id, "performers": spec})
    notifications.notify_task(s, task, "unassigned")


def _due_at(instance, view):
    """The task property `due`: a Python expression over task data giving an ISO 8601 duration
    ("P2D", counted from now) or an ISO 8601 date-time, held to the timer horizon. A value that
    is neither, or an expression stopped by its limits, leaves the task open without a due date
    rather than failing the step, and becomes an incident naming the task so its designer learns."""
    expression = view.properties.get("due")
    if not expression:
        return None
    try:
        return horizon.due_moment(script_engine().environment.evaluate(expression, dict(view.data)))
    except ScriptError as err:
        kind, message, line = err.kind, err.message, err.line
    except Exception as err:  # noqa: BLE001 - a designer's expression may raise anything
        kind, message, line = "due", f"due: {err}", None
    instance.incidents.append(Incident(element=view.element_id, kind=kind, message=message, line=line))
    return None


def _json_safe(data: dict) -> dict:
    import json

    return json.loads(json.dumps(data, default=str))


def visible_instance(s: Session, user: User, instance_id: int) -> ProcessInstance:
    """The instance if the policy lets `user` read it; otherwise it does not exist for them."""
    row = s.scalar(select(ProcessInstance).where(ProcessInstance.id == instance_id,
                                                 policy.scope_filter(user, "read", "process_instance")))
    if row is None:
        raise NotFound(_("Process instance %(id)s not found.", id=instance_id))
    audit_log.note_read("process_instance", row.id)
    return row


def visible_task(s: Session, user: User, task_id: str) -> OpenTask:
    """The open task if `user` may work on it (or, as a system administrator, look at it)."""
    task = open_task(s, task_id)
    policy.authorize(user, "read", "task", task, hide=True, message=_("Task not found or already completed."))
    audit_log.note_read("task", task.id)
    return task
