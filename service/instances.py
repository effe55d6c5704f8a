"""Process instances as units of work.

Every operation loads one instance row, runs the engine, and writes — in one transaction — the
new engine state (guarded by the row's version), the history of the steps just completed, the
open-task projection and the audit record. Task lists and history are read from the
projections; they never deserialize an engine state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from engine import clock, codec
from engine.errors import MessageNotCaught, TaskNotFound, TaskNotReady
from engine.runtime import Instance, Step
from engine.starts import begin, begin_by_message, begin_by_timer, message_starts

from . import audit, forms, notifications, performers, scheduler
from .errors import Conflict, Forbidden, NotFound
from .models import (
    DeploymentFile,
    InstanceStep,
    OpenTask,
    ProcessDefinition,
    ProcessInstance,
    TaskCandidate,
    User,
    utcnow,
)
from .services import UnitContext, current_unit
from .studio import catalogue
from .workflows import process_for, script_engine


@dataclass
class Outcome:
    instance: ProcessInstance
    one_time: list[dict] = field(default_factory=list)


def latest_definition(s: Session, key: str) -> ProcessDefinition:
    definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                          .order_by(ProcessDefinition.version.desc()).limit(1))
    if definition is None:
        raise NotFound(_("Process '%(key)s' is not deployed.", key=key))
    return definition


def start(s: Session, user: User | None, key: str, business_key: str | None = None, data: dict | None = None,
          start_event: str | None = None, message: tuple[str, dict] | None = None) -> Outcome:
    """Start the latest version of `key` by hand, through timer start event `start_event`, or by a
    `message` (name, payload); `user` None is the platform itself."""
    definition = latest_definition(s, key)
    if user is not None and not start_event and not message and not catalogue.may_start(s, user, key):
        raise Forbidden(_("You may not start '%(name)s'.", name=definition.name))
    process = process_for(s, definition.deployment_id, key)
    row = ProcessInstance(
        definition_id=definition.id,
        process_key=key,
        version=definition.version,
        business_key=business_key,
        started_by=user.id if user else None,
        department_id=user.department_id if user else None,
        engine_state="",
        serializer_version=codec.serializer_version(),
    )
    s.add(row)
    s.flush()
    unit = UnitContext(s, user.id if user else None, row.id)
    token = current_unit.set(unit)
    try:
        initial = dict(data or {})
        if user is not None:
            initial["initiator"] = user.username  # never taken from start data
        if start_event:
            instance = begin_by_timer(process, script_engine(), start_event)
        elif message:
            instance = begin_by_message(process, script_engine(), message[0], message[1])
        else:
            instance = begin(process, script_engine(), initial)
    finally:
        current_unit.reset(token)
    _persist(s, row, instance, user, unit)
    audit.record(s, "instance_started", "process_instance", row.id, actor_id=user.id if user else None,
                 detail={"process_key": key, "version": definition.version, "business_key": business_key})
    return Outcome(row, unit.one_time)


def _load(s: Session, instance_id: int, for_update: bool = True) -> ProcessInstance:
    query = select(ProcessInstance).where(ProcessInstance.id == instance_id)
    if for_update and s.bind.dialect.name == "postgresql":
        # Serialise concurrent work on one instance; the version column still guards the write.
        query = query.with_for_update()
    row = s.scalar(query)
    if row is None:
        raise NotFound(_("Process instance %(id)s not found.", id=instance_id))
    return row


def _engine_instance(s: Session, row: ProcessInstance) -> Instance:
    definition = s.get(ProcessDefinition, row.definition_id)
    process = process_for(s, definition.deployment_id, row.process_key)
    return Instance.load(process, row.engine_state, script_engine())


def may_complete(user: User, task: OpenTask) -> bool:
    if task.assignee_id is not None:
        return task.assignee_id == user.id
    groups = user.groups
    return any(c.user_id == user.id or (c.group_code and c.group_code in groups) for c in task.candidates)


def open_task(s: Session, task_id: str) -> OpenTask:
    task = s.get(OpenTask, str(task_id))
    if task is None:
        raise NotFound(_("Task not found or already completed."))
    return task


def form_schema(s: Session, task: OpenTask) -> dict:
    text = None
    if task.form:
        instance = s.get(ProcessInstance, task.instance_id)
        definition = s.get(ProcessDefinition, instance.definition_id)
        text = s.scalar(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id == definition.deployment_id,
            DeploymentFile.kind == "form", DeploymentFile.name == task.form))
    return forms.task_schema(text, task.approval)


def complete(s: Session, user: User, task_id: str, data: dict[str, Any]) -> Outcome:
    task = s.get(OpenTask, str(task_id))
    if task is None:
        # Completed tasks leave the projection; say so plainly if the task ever existed.
        done = s.scalar(select(InstanceStep.id).where(InstanceStep.task_id == str(task_id)).limit(1))
        if done is not None:
            raise Conflict(_("This task has already been completed."))
        raise NotFound(_("Task not found or already completed."))
    if not may_complete(user, task):
        raise Forbidden(_("This task is not assigned to you."))
    schema = form_schema(s, task)
    forms.validate(schema, data, task.approval)
    row = _load(s, task.instance_id)
    if row.state not in ("running", "error"):
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    instance = _engine_instance(s, row)
    unit = UnitContext(s, user.id, row.id)
    token = current_unit.set(unit)
    try:
        step = instance.complete(task_id, data)
    except TaskNotReady:
        raise Conflict(_("This task has already been completed.")) from None
    except TaskNotFound:
        raise NotFound(_("Task not found or already completed.")) from None
    finally:
        current_unit.reset(token)
    meta = {step.task_id: {"user_id": user.id, "data": data,
                           "decision": data.get("decision") if task.approval else None,
                           "opinion": data.get("opinion") if task.approval else None}}
    _persist(s, row, instance, user, unit, meta)
    audit.record(s, "task_completed", "task", task_id, actor_id=user.id,
                 detail={"instance": row.id, "element": task.element_id,
                         "decision": meta[step.task_id]["decision"]})
    return Outcome(row, unit.one_time)


def claim(s: Session, user: User, task_id: str, release: bool = False) -> OpenTask:
    task = open_task(s, task_id)
    if release:
        if task.assignee_id != user.id:
            raise Forbidden(_("This task is not assigned to you."))
        task.assignee_id = None
    else:
        if task.assignee_id == user.id:
            return task
        if task.assignee_id is not None:
            raise Conflict(_("This task has already been claimed by someone else."))
        if not may_complete(user, task):
            raise Forbidden(_("This task is not assigned to you."))
        task.assignee_id = user.id
    audit.record(s, "task_released" if release else "task_claimed", "task", task_id, actor_id=user.id)
    return task


def deliver_message(s: Session, user: User | None, name: str, payload: dict | None,
                    business_key: str | None = None, correlation: dict | None = None) -> Outcome:
    """Deliver a message to the one running instance that waits for it (and matches)."""
    query = select(ProcessInstance.id).where(
        ProcessInstance.state == "running",
        func.cast(ProcessInstance.waiting_messages, _text_type()).like(f'%"{_like_escape(name)}"%', escape="\\"),
    ).order_by(ProcessInstance.id)
    if business_key:
        query = query.where(ProcessInstance.business_key == business_key)
    for instance_id in s.scalars(query):
        row = _load(s, instance_id)
        instance = _engine_instance(s, row)
        if correlation and not _correlates(instance.workflow.correlations, correlation):
            continue
        unit = UnitContext(s, user.id if user else None, row.id)
        token = current_unit.set(unit)
        try:
            instance.deliver(name, payload)
        except MessageNotCaught:
            continue
        finally:
            current_unit.reset(token)
        _persist(s, row, instance, user, unit)
        audit.record(s, "message_delivered", "process_instance", row.id,
                     actor_id=user.id if user else None, detail={"message": name})
        return Outcome(row, unit.one_time)
    key = _process_started_by(s, name)
    if key is not None and not business_key:
        return start(s, user, key, message=(name, payload or {}))
    raise NotFound(_("No running instance waits for message '%(name)s'.", name=name))


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


def _route_outbox(s: Session, events: list, origin: ProcessInstance) -> None:
    """Messages a step threw go to the instance waiting for them, or start the process that
    begins with them, in the same transaction."""
    for event in events:
        name = getattr(event.event_definition, "name", None)
        if not name:
            continue
        payload = event.payload if isinstance(event.payload, dict) else {"value": event.payload}
        try:
            outcome = deliver_message(s, None, name, payload)
        except NotFound:
            audit.record(s, "message_undelivered", "process_instance", origin.id, detail={"message": name})
            continue
        audit.record(s, "message_sent", "process_instance", origin.id,
                     detail={"message": name, "to": outcome.instance.id})


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
    try:
        definition = latest_definition(s, key)
    except NotFound:
        return None
    process = process_for(s, definition.deployment_id, key)
    start(s, None, key, start_event=element)
    return process


def fire_timers(s: Session, row: ProcessInstance) -> None:
    """Fire the instance's due timers (boundary escalations, waits) as one unit of work."""
    instance = _engine_instance(s, row)
    unit = UnitContext(s, None, row.id)
    token = current_unit.set(unit)
    try:
        instance.fire_due_timers()
    finally:
        current_unit.reset(token)
    _persist(s, row, instance, None, unit)
    if instance.steps:
        audit.record(s, "timers_fired", "process_instance", row.id,
                     detail={"elements": [st.element_id for st in instance.steps]})


def mark_overdue(s: Session, task: OpenTask) -> None:
    """A task passed its due date: flag it and tell whoever may do it (R-WF-2)."""
    task.overdue = True
    notifications.notify_task(s, task, "overdue")
    audit.record(s, "task_overdue", "task", task.id, detail={"instance": task.instance_id, "element": task.element_id})


def retry(s: Session, user: User, instance_id: int, reason: str, data: dict | None = None) -> Outcome:
    """Run an instance's failed step again (after its cause was fixed), with an audited reason."""
    row = _load(s, instance_id)
    if row.state != "error":
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    instance = _engine_instance(s, row)
    unit = UnitContext(s, user.id, row.id)
    token = current_unit.set(unit)
    try:
        instance.retry(data)
    finally:
        current_unit.reset(token)
    row.incidents = []
    _persist(s, row, instance, user, unit)
    audit.record(s, "instance_retried", "process_instance", row.id, actor_id=user.id, detail={"reason": reason})
    return Outcome(row, unit.one_time)


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


def cancel(s: Session, user: User, instance_id: int, reason: str | None) -> Outcome:
    row = _load(s, instance_id)
    if row.state not in ("running", "error"):
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    instance = _engine_instance(s, row)
    instance.cancel()
    unit = UnitContext(s, user.id, row.id)
    _persist(s, row, instance, user, unit, final_state="cancelled")
    audit.record(s, "instance_cancelled", "process_instance", row.id, actor_id=user.id, detail={"reason": reason})
    return Outcome(row)


def _persist(s: Session, row: ProcessInstance, instance: Instance, actor: User | None, unit: UnitContext,
             step_meta: dict[str, dict] | None = None, final_state: str | None = None) -> None:
    cfg = current_app.config["INKLESS"]
    step_meta = step_meta or {}
    for step in instance.steps:
        meta = step_meta.get(step.task_id, {})
        s.add(_history_row(row.id, step, meta))
    row.engine_state = instance.dumps(keep_history=cfg.keep_history)
    row.serializer_version = codec.serializer_version()
    now = utcnow()
    if instance.incidents:
        row.incidents = list(row.incidents or []) + [dict(i.as_dict(), at=now.isoformat()) for i in instance.incidents]
    if final_state:
        row.state = final_state
        row.ended_at = now
    elif instance.completed:
        row.state = "completed"
        row.ended_at = now
    elif instance.failed:
        row.state = "error"
    else:
        row.state = "running"
    row.active_elements = [] if row.state in ("completed", "cancelled") else instance.active_elements()
    row.waiting_messages = [] if row.state in ("completed", "cancelled") else instance.waiting_messages()
    row.next_timer_at = None if row.state in ("completed", "cancelled") else instance.next_timer_due()
    _sync_open_tasks(s, row, instance if row.state in ("running", "error") else None)
    scheduler.sync_instance(s, row)
    s.flush()
    if instance.outbox:
        events, instance.outbox = instance.outbox, []
        _route_outbox(s, events, row)


def _history_row(instance_id: int, step: Step, meta: dict) -> InstanceStep:
    return InstanceStep(
        instance_id=instance_id,
        element_id=step.element_id,
        name=step.name,
        kind=step.kind,
        task_id=step.task_id,
        user_id=meta.get("user_id"),
        completed_at=step.completed_at,
        decision=meta.get("decision"),
        opinion=meta.get("opinion"),
        data=meta.get("data"),
    )


def _sync_open_tasks(s: Session, row: ProcessInstance, instance: Instance | None) -> None:
    ready = {t.id: t for t in instance.user_tasks()} if instance is not None else {}
    existing = set(s.scalars(select(OpenTask.id).where(OpenTask.instance_id == row.id)))
    gone = existing - set(ready)
    if gone:
        s.execute(delete(TaskCandidate).where(TaskCandidate.task_id.in_(gone)))
        s.execute(delete(OpenTask).where(OpenTask.id.in_(gone)))
        scheduler.drop_deadlines(s, gone)
    initiator = s.get(User, row.started_by) if row.started_by else None
    for task_id, view in ready.items():
        if task_id in existing:
            continue
        spec = performers.spec_for(view.lane, view.properties)
        who = performers.resolve(s, spec, view.data, initiator)
        task = OpenTask(
            id=task_id,
            instance_id=row.id,
            process_key=row.process_key,  # the instance's process, also for tasks inside subprocesses
            element_id=view.element_id,
            name=view.name,
            lane=view.lane,
            form=view.form,
            ui_form=view.ui_form,
            approval=str(view.properties.get("approval", "")).lower() == "true",
            instructions=view.instructions,
            data=_json_safe(view.data),
            due_at=_due_at(view),
        )
        task.candidates = [TaskCandidate(user_id=u) for u in sorted(who.users)] + [
            TaskCandidate(group_code=g) for g in sorted(who.groups)]
        s.add(task)
        s.flush()
        scheduler.sync_deadline(s, task.id, task.due_at)
        returned = view.data.get("decision") == "return"
        notifications.notify_task(s, task, "returned" if returned else "task")


def _due_at(view):
    """The task property `due`: a Python expression over task data giving an ISO 8601 duration
    ("P2D", counted from now) or an ISO 8601 date-time. A bad value leaves the task without a due
    date rather than failing the step; deploy-time validation checks the expression compiles."""
    expression = view.properties.get("due")
    if not expression:
        return None
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    try:
        value = script_engine().environment.evaluate(expression, dict(view.data))
        if isinstance(value, str) and value.upper().startswith("P"):
            parsed = TimerEventDefinition.parse_iso_duration(value)
            now = clock.now()
            return now + TimerEventDefinition.get_timedelta_from_start(parsed, now)
        if isinstance(value, str):
            return TimerEventDefinition.get_datetime(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def _json_safe(data: dict) -> dict:
    import json

    return json.loads(json.dumps(data, default=str))


def visible_to(user: User):
    """Filter for instances a user may see: their own, ones they acted in or may act in, or any
    in their department for its administrator; everything for system admins and supervisors."""
    if user.role == "system_admin" or "supervisor" in user.groups or "platform_admin" in user.groups:
        return None
    acted = select(InstanceStep.instance_id).where(InstanceStep.user_id == user.id)
    assigned = select(OpenTask.instance_id).join(TaskCandidate).where(
        or_(TaskCandidate.user_id == user.id, TaskCandidate.group_code.in_(user.groups or {""}),
            OpenTask.assignee_id == user.id))
    conditions = [ProcessInstance.started_by == user.id, ProcessInstance.id.in_(acted), ProcessInstance.id.in_(assigned)]
    if user.role == "dept_admin":
        conditions.append(ProcessInstance.department_id == user.department_id)
    return or_(*conditions)
