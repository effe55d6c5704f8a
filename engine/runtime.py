"""Running one process instance: start, list user tasks, complete, deliver messages, fire timers.

An `Instance` wraps a SpiffWorkflow `BpmnWorkflow` for the length of one unit of work (a request,
a timer firing). It records the elements completed during that unit (`steps`) so the service can
append them to its history table, and turns run-time failures into `Incident`s instead of letting
them escape: the step that failed stays in ERROR, everything before it is kept.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from . import clock, codec
from .errors import Incident, MessageNotCaught, ScriptError, ScriptLimit, TaskNotFound, TaskNotReady
from .loader import ParsedProcess

# Call activities and subprocesses inside each other, at most: a process that calls itself (directly
# or round a circle of processes deployed apart) would otherwise nest until memory runs out.
MAX_NESTING = 12
# An instruction template that overran one of these becomes an incident; any other template error
# (an undefined name, a refused attribute) only shows the text as written, as it always did.
_TEMPLATE_LIMITS = ("timeout", "memory", "limit")

# Step kinds done by people (SpiffWorkflow's spec class names): the ones with an open task.
PEOPLE_KINDS = ("UserTask", "ManualTask")
_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


@dataclass(frozen=True)
class Step:
    """An element that completed during this unit of work."""

    element_id: str
    name: str | None
    kind: str
    task_id: str
    completed_at: datetime
    lane: str | None = None


@dataclass
class UserTask:
    id: str
    element_id: str
    name: str
    lane: str | None
    form: str | None
    ui_form: str | None
    instructions: str
    properties: dict[str, str]
    data: dict[str, Any]
    process_key: str
    # The designer's English instructions (the `instructions_en` property), rendered like the
    # Chinese ones; empty when the diagram has none.
    instructions_en: str = ""


@dataclass
class Instance:
    process: ParsedProcess
    workflow: BpmnWorkflow
    steps: list[Step] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    outbox: list[BpmnEvent] = field(default_factory=list)
    # Instructions rendered during this unit of work, by task id: rendering takes a worker round trip.
    _instructions: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # SpiffWorkflow opens a call activity's process while *updating* the task, where no
        # do_engine_steps hook runs; every subprocess is created through the top workflow, so the
        # nesting limit goes there (the codec builds plain BpmnWorkflows, hence per object).
        create = self.workflow.create_subprocess

        def create_subprocess(my_task, spec_name):
            _refuse_deep_nesting(my_task)
            return create(my_task, spec_name)

        self.workflow.create_subprocess = create_subprocess

    # -- life cycle -------------------------------------------------------------------------
    @classmethod
    def start(cls, process: ParsedProcess, script_engine, data: dict | None = None) -> Instance:
        workflow = BpmnWorkflow(process.spec, process.subprocess_specs, script_engine=script_engine)
        start_task = workflow.get_next_task(state=TaskState.READY)
        if data and start_task is not None:
            # Initial data goes on the READY start task; workflow.data is not inherited (pitfall P13).
            start_task.set_data(**data)
        instance = cls(process, workflow)
        instance.run()
        return instance

    @classmethod
    def load(cls, process: ParsedProcess, state: str, script_engine) -> Instance:
        workflow = codec.loads(state, process.spec, process.subprocess_specs)
        # The script engine is not serialized (pitfall P2). Subprocesses read the top workflow's
        # (BpmnSubWorkflow.script_engine is a read-only property), so one assignment covers all.
        workflow.script_engine = script_engine
        return cls(process, workflow)

    def dumps(self, keep_history: int = 12) -> str:
        codec.compact(self.workflow, keep=keep_history)
        return codec.dumps(self.workflow)

    def run(self) -> None:
        """Run every automatic step that is ready; record failures as incidents."""
        with self._unit_of_work():
            self.workflow.do_engine_steps()

    # -- user tasks ---------------------------------------------------------------------------
    def user_tasks(self) -> list[UserTask]:
        return [self._view(t) for t in self.workflow.get_tasks(state=TaskState.READY, manual=True)]

    def user_task(self, task_id: str) -> UserTask:
        return self._view(self._ready_manual(task_id))

    def complete(self, task_id: str, data: dict[str, Any]) -> Step:
        """Complete a READY user task with the submitted data and run what follows.

        The returned Step describes the submission. When the task's post-script fails, the task
        is left in ERROR with an incident and the Step is *not* added to `steps`: the task did not
        complete, and a retry makes it READY again for a new submission."""
        task = self._ready_manual(task_id)
        with self._unit_of_work():
            task.set_data(**data)
            task.run()
            self.workflow.do_engine_steps()
        for step in self.steps:
            if step.task_id == str(task.id):
                return step
        return self._step(task)

    # -- events -------------------------------------------------------------------------------
    def deliver(self, name: str, payload: dict | None = None) -> None:
        """Deliver message `name` to this instance, or raise MessageNotCaught.

        Only an event somebody here waits for is delivered (a waiting catch event, receive task,
        boundary event, event-based gateway, or a message start of an event subprocess); a message
        for another instance must not land in this one's outbox as if it had thrown it."""
        payload = payload if payload is not None else {}
        definition = self._catching_definition(name)
        if definition is None:
            raise MessageNotCaught(name)
        try:
            correlations = definition.calculate_correlations(
                self.workflow.script_engine, definition.correlation_properties, payload)
        except Exception as e:  # noqa: BLE001 - a payload without the correlation keys cannot match
            raise MessageNotCaught(f"{name}: cannot correlate the payload ({e})") from None
        event = BpmnEvent(definition, payload, correlations)
        if not self._catches(event):
            raise MessageNotCaught(f"{name}: no waiting event matches the correlation")
        with self._unit_of_work():
            self.workflow.send_event(event)
            self.workflow.do_engine_steps()

    def waiting_messages(self) -> list[str]:
        if self.workflow.is_completed():
            return []
        names: list[str] = []
        for task in self._waiting_events():
            names.extend(message_names(task.task_spec.event_definition))
        for start_event in self._event_subprocess_starts():
            names.extend(message_names(start_event.event_definition))
        return list(dict.fromkeys(names))

    def fire_due_timers(self) -> None:
        # do_engine_steps alone leaves a due timer READY and unrun (pitfall P3).
        with self._unit_of_work():
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps()

    def next_timer_due(self) -> datetime | None:
        due = []
        for task in self._waiting_events():
            if not _timer_definitions(task.task_spec.event_definition):
                continue
            value = task.internal_data.get("event_value")
            if isinstance(value, dict):  # a cycle: {'cycles', 'next', 'duration'}
                value = value.get("next")
            if isinstance(value, datetime):
                due.append(value if value.tzinfo else value.replace(tzinfo=clock.now().tzinfo))
            elif isinstance(value, str):
                try:
                    due.append(TimerEventDefinition.get_datetime(value))
                except ValueError:
                    continue
        return min(due) if due else None

    def cancel(self) -> None:
        self.workflow.cancel()

    def retry(self, data: dict[str, Any] | None = None) -> None:
        """Run failed steps again, after their cause was fixed.

        Each failed task is reset: SpiffWorkflow copies its data from its parent again and
        re-evaluates it (a boundary timer is re-armed during the reset itself). `data`, when
        given, is therefore written into the *parent's* data before the reset; merging it into the
        reset task alone would be overwritten by the parent's values when the task becomes ready.
        """
        with self._unit_of_work():
            failed = self.workflow.get_tasks(state=TaskState.ERROR)
            for task in failed:
                # An earlier reset in this loop may have removed this task (it was a descendant).
                if not self._exists(task) or task.state != TaskState.ERROR:
                    continue
                if data and task.parent is not None:
                    task.parent.data.update(deepcopy(data))
                self.workflow.reset_from_task_id(task.id)
            self.incidents.clear()
            self.workflow.do_engine_steps()

    def earlier_steps(self) -> list[tuple[str, str]]:
        """The user tasks the token may be moved back to: (element id, name), nearest first.

        Only completed user tasks on the path to a task that is open now qualify. Automatic steps
        are left out on purpose: moving back to one would run its script or service (create an
        account, send a message) a second time."""
        out: dict[str, str] = {}
        for task in self._move_back_targets():
            out.setdefault(task.task_spec.bpmn_id, task.task_spec.bpmn_name or task.task_spec.bpmn_id)
        return list(out.items())

    def move_back(self, element_id: str) -> str:
        """Move the token back to the nearest earlier occurrence of user task `element_id`: that
        task is READY again (same task id) and everything after it is discarded, including open
        tasks, waiting timers and errors on the way (SpiffWorkflow's `reset_from_task_id`; its
        data is copied again from its parent, as when it first opened). Returns the task id."""
        target = next((t for t in self._move_back_targets() if t.task_spec.bpmn_id == element_id), None)
        if target is None:
            raise TaskNotFound(element_id)
        with self._unit_of_work():
            self.workflow.reset_from_task_id(target.id)
            self.incidents.clear()
            self.workflow.do_engine_steps()
        return str(target.id)

    def _move_back_targets(self) -> list[Task]:
        """Completed user tasks that are ancestors of an open task, nearest ancestor first."""
        seen: set[UUID] = set()
        out: list[Task] = []
        for task in self.workflow.get_tasks(state=_ACTIVE):
            ancestor = task.parent
            while ancestor is not None:
                if (ancestor.id not in seen and ancestor.state == TaskState.COMPLETED
                        and ancestor.task_spec.manual and ancestor.task_spec.bpmn_id is not None):
                    seen.add(ancestor.id)
                    out.append(ancestor)
                ancestor = ancestor.parent
        return out

    # -- state --------------------------------------------------------------------------------
    @property
    def completed(self) -> bool:
        return self.workflow.is_completed()

    @property
    def failed(self) -> bool:
        return bool(self.workflow.get_tasks(state=TaskState.ERROR))

    def active_elements(self) -> list[dict[str, str]]:
        """Where the token stands. A boundary event waiting on an open activity (a deadline's
        timer) is part of that activity, not a step of its own, so it is left out - unless it failed,
        because then it is where the incident stands."""
        out = []
        for task in self.workflow.get_tasks(state=_ACTIVE):
            if task.task_spec.bpmn_id is None:
                continue
            if isinstance(task.task_spec, BoundaryEvent) and task.state != TaskState.ERROR:
                continue
            out.append({"element_id": task.task_spec.bpmn_id, "state": TaskState.get_name(task.state)})
        return out

    @property
    def data(self) -> dict[str, Any]:
        if self.completed:
            return dict(self.workflow.data)
        return dict(self.workflow.last_task.data) if self.workflow.last_task else {}

    # -- internals ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _unit_of_work(self) -> Iterator[None]:
        """Record what completes inside, and turn any failure into an incident.

        Steps are found by comparing completed tasks before and after rather than through
        do_engine_steps' callback, which sees neither call activities (they complete when their
        subprocess ends) nor user tasks, and reports a call activity when it merely starts."""
        before = self._completed_ids()
        try:
            yield
        except Exception as error:  # noqa: BLE001 - anything escaping would lose the unit's work
            self.incidents.append(self._incident(error))
        finally:
            self._render_new_instructions()
            self._record_since(before)
            self.outbox.extend(self.workflow.get_events())

    def _render_new_instructions(self) -> None:
        """Render the instructions of user tasks that opened in this unit, so that a template that
        overruns its limits is an incident on its task now, not a hang whenever someone looks."""
        for task in self.workflow.get_tasks(state=TaskState.READY, manual=True):
            for key, source in _instruction_sources(task.task_spec):
                if key(task) in self._instructions or "{" not in source:
                    continue
                try:
                    self._instructions[key(task)] = self.workflow.script_engine.environment.render(source, task.data)
                except ScriptError as error:
                    if error.kind not in _TEMPLATE_LIMITS:
                        self._instructions[key(task)] = source
                        continue
                    task._set_state(TaskState.ERROR)
                    self.incidents.append(Incident(element=task.task_spec.bpmn_id, kind=error.kind,
                                                   message=f"instructions: {error.message}"))
                    break
                except Exception:  # noqa: BLE001 - a bad template must not hide the task
                    self._instructions[key(task)] = source

    def _exists(self, task: Task) -> bool:
        try:
            return self.workflow.get_task_from_id(task.id) is task
        except WorkflowException:
            return False

    def _completed_ids(self) -> set[UUID]:
        return {t.id for t in self._all_tasks() if t.state == TaskState.COMPLETED}

    def _all_tasks(self) -> list[Task]:
        tasks = list(self.workflow.tasks.values())
        for sub in self.workflow.subprocesses.values():
            tasks.extend(sub.tasks.values())
        return tasks

    def _record_since(self, before: set[UUID]) -> None:
        done = [t for t in self._all_tasks() if t.state == TaskState.COMPLETED and t.id not in before]
        for task in sorted(done, key=lambda t: t.last_state_change):
            if task.task_spec.bpmn_id is not None:
                self.steps.append(self._step(task))

    def _step(self, task: Task) -> Step:
        spec = task.task_spec
        return Step(
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            kind=type(spec).__name__,
            task_id=str(task.id),
            completed_at=clock.now(),
            lane=spec.lane,
        )

    def _incident(self, error: Exception) -> Incident:
        task = _failing_task(error, self.workflow)
        if task is not None and task.has_state(TaskState.NOT_FINISHED_MASK):
            # SpiffWorkflow marks a task ERROR only when its own run fails. A failure while a task
            # is being *updated* (a timer expression evaluated on arrival, say) leaves it WAITING
            # and silently dead; mark it so `failed` says so and `retry` resets it.
            task._set_state(TaskState.ERROR)
        return _incident_from(error, task)

    def _waiting_events(self) -> list[Task]:
        return [t for t in self.workflow.get_tasks(state=TaskState.WAITING)
                if getattr(t.task_spec, "event_definition", None) is not None]

    def _event_subprocess_starts(self) -> list:
        """Start events of event subprocesses that a message can trigger at any time."""
        starts = []
        for name in getattr(self.workflow.spec.start, "trigger_specs", []):
            spec = self.workflow.subprocess_specs.get(name)
            starts.extend(spec.bpmn_start_events if spec is not None else [])
        return starts

    def _catching_definition(self, name: str):
        for task in self._waiting_events():
            definition = _message_definition(task.task_spec.event_definition, name)
            if definition is not None:
                return definition
        if not self.workflow.is_completed():
            for start_event in self._event_subprocess_starts():
                definition = _message_definition(start_event.event_definition, name)
                if definition is not None:
                    return definition
        return None

    def _catches(self, event: BpmnEvent) -> bool:
        for task in self._waiting_events():
            catches = getattr(task.task_spec, "catches", None)
            if catches is not None and catches(task, event):
                return True
        # An event subprocess start is created on delivery, so it cannot be waiting yet.
        return any(start.event_definition == event.event_definition for start in self._event_subprocess_starts())

    def _ready_manual(self, task_id: str):
        try:
            task = self.workflow.get_task_from_id(UUID(str(task_id)))
        except (ValueError, WorkflowException):
            task = None
        if task is None:
            raise TaskNotFound(task_id)
        if not task.task_spec.manual:
            raise TaskNotFound(task_id)
        if task.state != TaskState.READY:
            raise TaskNotReady(f"task is {TaskState.get_name(task.state)}")
        return task

    def _view(self, task) -> UserTask:
        spec = task.task_spec
        ext = spec.extensions or {}
        props = dict(ext.get("properties") or {})
        rendered = {}
        for key, source in _instruction_sources(spec):
            if key(task) not in self._instructions and "{" in source:
                try:
                    source = self.workflow.script_engine.environment.render(source, task.data)
                except Exception:  # noqa: BLE001 - a bad template must not hide the task
                    pass
                self._instructions[key(task)] = source
            rendered[key] = self._instructions.get(key(task), source)
        instructions, instructions_en = (rendered.get(k, "") for k in (_chinese_key, _english_key))
        return UserTask(
            id=str(task.id),
            element_id=spec.bpmn_id,
            name=spec.bpmn_name or spec.bpmn_id,
            lane=spec.lane,
            form=props.get("formJsonSchemaFilename"),
            ui_form=props.get("formUiSchemaFilename"),
            instructions=instructions,
            properties=props,
            data=dict(task.data),
            process_key=task.workflow.spec.name,
            instructions_en=instructions_en,
        )


def _chinese_key(task) -> str:
    return str(task.id)


def _english_key(task) -> str:
    return f"{task.id}:en"


def _instruction_sources(spec) -> list:
    """(cache key, template) of a user task's instructions: as written, and in English when the
    designer gave the `instructions_en` property."""
    ext = spec.extensions or {}
    sources = [(_chinese_key, ext.get("instructionsForEndUser") or "")]
    english = (ext.get("properties") or {}).get("instructions_en") or ""
    if english:
        sources.append((_english_key, english))
    return sources


def _message_definition(definition, name: str):
    if isinstance(definition, MessageEventDefinition) and definition.name == name:
        return definition
    for inner in getattr(definition, "event_definitions", None) or []:
        if isinstance(inner, MessageEventDefinition) and inner.name == name:
            return inner
    return None


def message_names(definition) -> list[str]:
    if isinstance(definition, MessageEventDefinition):
        return [definition.name]
    return [d.name for d in getattr(definition, "event_definitions", None) or []
            if isinstance(d, MessageEventDefinition)]


def _timer_definitions(definition) -> list[TimerEventDefinition]:
    if isinstance(definition, TimerEventDefinition):
        return [definition]
    return [d for d in getattr(definition, "event_definitions", None) or [] if isinstance(d, TimerEventDefinition)]


def _refuse_deep_nesting(task: Task) -> None:
    """A call activity or subprocess that would open a process nested deeper than MAX_NESTING
    fails instead (its task is named)."""
    if task.workflow.depth >= MAX_NESTING:
        limit = ScriptLimit(f"call activities and subprocesses are nested more than {MAX_NESTING} deep; "
                            "does a process call itself?")
        raise WorkflowTaskException(limit.message, task=task, exception=limit) from limit


def _failing_task(error: Exception, workflow: BpmnWorkflow) -> Task | None:
    """The task whose spec raised: the exception's own `task`, else the innermost SpiffWorkflow
    frame that was working on one (plain exceptions such as 'Invalid duration' carry none)."""
    task = getattr(error, "task", None)
    if isinstance(task, Task):
        return task
    found = None
    tb = error.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("my_task")
        if isinstance(candidate, Task) and candidate.workflow.top_workflow is workflow:
            found = candidate
        tb = tb.tb_next
    if found is not None:
        return found
    spec = getattr(error, "task_spec", None)
    if spec is not None:
        for candidate in workflow.get_tasks(state=TaskState.ERROR):
            if candidate.task_spec is spec:
                return candidate
    return None


def _incident_from(error: Exception, task: Task | None = None) -> Incident:
    task_spec = getattr(error, "task_spec", None) or (task.task_spec if task is not None else None)
    element = getattr(task_spec, "bpmn_id", None) if task_spec is not None else None
    cause: BaseException | None = error
    # SpiffWorkflow wraps the sandbox's error; report the original, which says what was refused.
    while cause is not None and not isinstance(cause, ScriptError):
        cause = cause.__cause__ or cause.__context__
    notes = [n.strip() for n in getattr(error, "notes", []) if n and n.strip()]
    if isinstance(cause, ScriptError):
        kind = cause.kind
        message = getattr(cause, "message", None) or str(cause)
        line = getattr(cause, "line", None) or getattr(error, "line_number", None)
        if cause is not error:
            # Keep SpiffWorkflow's context ("Error occurred in the Post-Script"), not its repetition.
            message = "; ".join([message, *notes])
    elif isinstance(error, WorkflowException):
        kind = "script"
        message = error.args[0] if error.args else type(error).__name__
        error_type = getattr(error, "error_type", None)
        if error_type and error_type != "unknown" and error_type not in message:
            message = f"{error_type}: {message}"
        message = "; ".join([message, *notes])
        line = getattr(error, "line_number", None) or None
    else:
        # Not a script problem: SpiffWorkflow itself failed (e.g. a timer value that is not ISO
        # 8601, computed at run time), so say which exception it was.
        kind = "engine"
        message = f"{type(error).__name__}: {error}"
        line = None
    return Incident(element=element, message=message, kind=kind, line=line)
