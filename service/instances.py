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
from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.orm import Session, joinedload

from engine import clock, codec
from engine.errors import MessageNotCaught, TaskNotFound, TaskNotReady
from engine.runtime import PEOPLE_KINDS, Instance, Step
from engine.starts import begin, begin_by_message, begin_by_timer, message_starts

from . import audit, forms, notifications, performers, policy, scheduler
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
    utcnow,
)
from .services import UnitContext, current_unit
from .studio import catalogue
from .workflows import deployment_of, process_for, script_engine


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
    task = _task_to_complete(s, task_id)
    if not may_complete(user, task):
        raise Forbidden(_("This task is not assigned to you."))
    return _complete(s, user, task, data)


def complete_for_applicant(s: Session, task_id: str, data: dict[str, Any]) -> Outcome:
    """Complete an applicant's task for someone without an account: the holder of a public
    application's tracking code (service/applications.py checks the code and the task first)."""
    return _complete(s, None, _task_to_complete(s, task_id), data)


def _task_to_complete(s: Session, task_id: str) -> OpenTask:
    task = s.get(OpenTask, str(task_id), options=[joinedload(OpenTask.candidates)])
    if task is None:
        # Completed tasks leave the projection; say so plainly if the task ever existed.
        done = s.scalar(select(InstanceStep.id).where(InstanceStep.task_id == str(task_id)).limit(1))
        if done is not None:
            raise Conflict(_("This task has already been completed."))
        raise NotFound(_("Task not found or already completed."))
    return task


def _complete(s: Session, user: User | None, task: OpenTask, data: dict[str, Any]) -> Outcome:
    task_id = task.id
    schema = form_schema(s, task)
    forms.validate(schema, data, task.approval)
    attachments.check(s, user, schema, data)
    row = _load(s, task.instance_id)
    if row.state not in ("running", "error"):
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    instance = _engine_instance(s, row)
    actor_id = user.id if user else None
    unit = UnitContext(s, actor_id, row.id)
    token = current_unit.set(unit)
    try:
        step = instance.complete(task_id, data)
    except TaskNotReady:
        raise Conflict(_("This task has already been completed.")) from None
    except TaskNotFound:
        raise NotFound(_("Task not found or already completed.")) from None
    finally:
        current_unit.reset(token)
    meta = {step.task_id: {"user_id": actor_id, "data": data,
                           "decision": data.get("decision") if task.approval else None,
                           "opinion": data.get("opinion") if task.approval else None}}
    _persist(s, row, instance, user, unit, meta)
    detail = {"instance": row.id, "element": task.element_id, "decision": meta[step.task_id]["decision"]}
    if user is None:
        detail["by"] = "applicant"  # a tracking-code holder, who has no account
    audit.record(s, "task_completed", "task", task_id, actor_id=actor_id, detail=detail)
    return Outcome(row, unit.one_time)


def claim(s: Session, user: User, task_id: str, release: bool = False) -> OpenTask:
    task = open_task(s, task_id)
    if release:
        if task.assignee_id != user.id:
            raise Forbidden(_("This task is not assigned to you."))
        task.assignee_id = None
        task.claimed_at = None
    else:
        if task.assignee_id == user.id:
            return task
        if task.assignee_id is not None:
            raise Conflict(_("This task has already been claimed by someone else."))
        if not may_complete(user, task):
            raise Forbidden(_("This task is not assigned to you."))
        task.assignee_id = user.id
        task.claimed_at = utcnow()
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


def earlier_steps(s: Session, row: ProcessInstance) -> list[tuple[str, str]]:
    """The user tasks `row` could move back to (element id, name), nearest first."""
    if row.state not in ("running", "error"):
        return []
    return _engine_instance(s, row).earlier_steps()


def move_back(s: Session, user: User, instance_id: int, element_id: str, reason: str) -> Outcome:
    """Move the token back to an earlier user task (admin action): that task opens again, what
    came after it is discarded (open tasks, deadlines, incidents). History keeps everything and
    gains a "moved_back" row naming the step, the actor and the reason; the audit log too."""
    row = _load(s, instance_id)
    policy.authorize(user, "move_back", "process_instance", row)
    if row.state not in ("running", "error"):
        raise Conflict(_("The process instance is %(state)s.", state=row.state))
    instance = _engine_instance(s, row)
    left = [a["element_id"] for a in row.active_elements or []]
    unit = UnitContext(s, user.id, row.id)
    token = current_unit.set(unit)
    try:
        task_id = instance.move_back(element_id)
    except TaskNotFound:
        raise Invalid(_("The instance cannot move back to '%(element)s'.", element=element_id),
                      [{"field": "element_id", "message": _("not an earlier step of this instance")}]) from None
    finally:
        current_unit.reset(token)
    name = next((t.name for t in instance.user_tasks() if t.id == task_id), None)
    s.add(InstanceStep(instance_id=row.id, element_id=element_id, name=name, kind="moved_back", task_id=task_id,
                       user_id=user.id, completed_at=utcnow(), opinion=reason))
    if not instance.failed:
        row.incidents = []
    _persist(s, row, instance, user, unit)
    audit.record(s, "instance_moved_back", "process_instance", row.id, actor_id=user.id,
                 detail={"to": element_id, "from": left, "reason": reason})
    return Outcome(row, unit.one_time)


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
    had_timer_job = scheduler.has_timer_job(row)
    if instance.steps:
        # A user task's ready and claim times live on its open task, which is about to be dropped;
        # the task being completed is already in the session, so this usually reads nothing.
        lives = _task_lives(s, [st.task_id for st in instance.steps if st.kind in PEOPLE_KINDS])
        # One (executemany) INSERT; nothing in the unit reads the new rows' ids. It autoflushes
        # first, so rows added before (move_back's "moved_back") keep their place in the history.
        # render_nulls keeps every row's column list the same, so the rows are one batch.
        s.execute(insert(InstanceStep).execution_options(render_nulls=True),
                  [_history_row(row, step, step_meta.get(step.task_id, {}), lives.get(step.task_id, (None, None)))
                   for step in instance.steps])
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
    scheduler.sync_instance(s, row, had_timer_job)
    s.flush()
    if instance.outbox:
        events, instance.outbox = instance.outbox, []
        _route_outbox(s, events, row)


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


def _sync_open_tasks(s: Session, row: ProcessInstance, instance: Instance | None) -> None:
    ready = {t.id: t for t in instance.user_tasks()} if instance is not None else {}
    existing = dict(s.execute(select(OpenTask.id, OpenTask.due_at).where(OpenTask.instance_id == row.id)).all())
    gone = set(existing) - set(ready)
    if gone:
        # task_candidates and task_drafts rows go with their task (ON DELETE CASCADE; SQLite has
        # foreign_keys=ON). The session forgets the candidates it holds, as it does the tasks, so a
        # new candidate row that gets a freed id is not mistaken for the old one.
        for task_id in gone:
            task = in_session(s, OpenTask, task_id)
            if task is not None and "candidates" not in inspect(task).unloaded:
                for candidate in task.candidates:
                    s.expunge(candidate)
        s.execute(delete(OpenTask).where(OpenTask.id.in_(gone)))
        # Only a task with a due date has a deadline job (see below).
        scheduler.drop_deadlines(s, {task_id for task_id in gone if existing[task_id] is not None})
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
        if task.due_at is not None:
            # A task new to the projection has no job yet (its id is new, or its job was dropped
            # when it left), so only a due date needs one.
            scheduler.sync_deadline(s, task.id, task.due_at)
        returned = view.data.get("decision") == "return"
        reached = notifications.notify_task(s, task, "returned" if returned else "task")
        # An applicant without an account (public application) acts through a tracking code.
        if not reached and not (initiator is None and "initiator" in spec):
            _nobody_can_take(s, row, task, spec)


# Who gets a task whose performers resolve to nobody active (R-WF-2: no step may stall unseen).
FALLBACK_GROUP = "platform_admin"


def _nobody_can_take(s: Session, row: ProcessInstance, task: OpenTask, spec: str) -> None:
    """The performers name nobody who can act (a department without a head, an empty group, a
    deactivated user): rather than a task that no inbox shows, the platform management department
    gets it, told why, and the audit log keeps the performer spec that failed."""
    task.candidates = [TaskCandidate(group_code=FALLBACK_GROUP)]
    audit.record(s, "task_unassigned", "task", task.id,
                 detail={"instance": row.id, "element": task.element_id, "performers": spec})
    notifications.notify_task(s, task, "unassigned")


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


def visible_instance(s: Session, user: User, instance_id: int) -> ProcessInstance:
    """The instance if the policy lets `user` read it; otherwise it does not exist for them."""
    row = s.scalar(select(ProcessInstance).where(ProcessInstance.id == instance_id,
                                                 policy.scope_filter(user, "read", "process_instance")))
    if row is None:
        raise NotFound(_("Process instance %(id)s not found.", id=instance_id))
    return row


def visible_task(s: Session, user: User, task_id: str) -> OpenTask:
    """The open task if `user` may work on it (or, as a system administrator, look at it)."""
    task = open_task(s, task_id)
    policy.authorize(user, "read", "task", task, hide=True, message=_("Task not found or already completed."))
    return task
