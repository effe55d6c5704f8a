"""Running one process instance: start, list user tasks, complete, deliver messages, fire timers.

An `Instance` wraps a SpiffWorkflow `BpmnWorkflow` for the length of one unit of work (a request,
a timer firing). It records the elements completed during that unit (`steps`) so the service can
append them to its history table, and turns run-time failures into `Incident`s instead of letting
them escape: the step that failed stays in ERROR, everything before it is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from jinja2.sandbox import SandboxedEnvironment
from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.util.task import TaskState

from . import clock, codec
from .errors import Incident, MessageNotCaught, TaskNotFound, TaskNotReady
from .loader import ParsedProcess
from .sandbox import ScriptError

_templates = SandboxedEnvironment(autoescape=False)
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


@dataclass
class Instance:
    process: ParsedProcess
    workflow: BpmnWorkflow
    steps: list[Step] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    outbox: list[BpmnEvent] = field(default_factory=list)

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
        # The script engine is not serialized (pitfall P2).
        workflow.script_engine = script_engine
        for sub in workflow.subprocesses.values():
            sub.script_engine = script_engine
        return cls(process, workflow)

    def dumps(self, keep_history: int = 12) -> str:
        codec.compact(self.workflow, keep=keep_history)
        return codec.dumps(self.workflow)

    def run(self) -> None:
        """Run every automatic step that is ready; record failures as incidents."""
        try:
            self.workflow.do_engine_steps(did_complete_task=self._record)
        except (WorkflowTaskException, WorkflowException, ScriptError) as e:
            self.incidents.append(_incident_from(e))
        self.outbox.extend(self.workflow.get_events())

    # -- user tasks ---------------------------------------------------------------------------
    def user_tasks(self) -> list[UserTask]:
        return [self._view(t) for t in self.workflow.get_tasks(state=TaskState.READY, manual=True)]

    def user_task(self, task_id: str) -> UserTask:
        return self._view(self._ready_manual(task_id))

    def complete(self, task_id: str, data: dict[str, Any]) -> Step:
        task = self._ready_manual(task_id)
        task.set_data(**data)
        try:
            task.run()
        except (WorkflowTaskException, WorkflowException, ScriptError) as e:
            # A failing post-script leaves the task in ERROR; nothing after it ran.
            self.incidents.append(_incident_from(e))
            return self._record(task)
        step = self._record(task)
        self.run()
        return step

    # -- events -------------------------------------------------------------------------------
    def deliver(self, name: str, payload: dict | None = None) -> None:
        """Deliver message `name` to this instance, or raise MessageNotCaught."""
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            definition = _message_definition(task.task_spec.event_definition, name)
            if definition is None:
                continue
            correlations = definition.calculate_correlations(
                self.workflow.script_engine, definition.correlation_properties, payload or {})
            self.workflow.catch(BpmnEvent(definition, payload or {}, correlations))
            self.run()
            return
        raise MessageNotCaught(name)

    def waiting_messages(self) -> list[str]:
        names = []
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            names.extend(_message_names(task.task_spec.event_definition))
        return names

    def fire_due_timers(self) -> None:
        # do_engine_steps alone leaves a due timer READY and unrun (pitfall P3).
        self.workflow.refresh_timers()
        self.run()

    def next_timer_due(self) -> datetime | None:
        due = []
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            if not isinstance(task.task_spec.event_definition, TimerEventDefinition) and not any(
                isinstance(d, TimerEventDefinition)
                for d in getattr(task.task_spec.event_definition, "event_definitions", [])
            ):
                continue
            value = task.internal_data.get("event_value")
            if isinstance(value, dict):
                value = value.get("next")
            if isinstance(value, str):
                try:
                    due.append(TimerEventDefinition.get_datetime(value))
                except ValueError:
                    continue
        return min(due) if due else None

    def cancel(self) -> None:
        self.workflow.cancel()

    def retry(self) -> None:
        """Run failed steps again (after their cause was fixed)."""
        for task in self.workflow.get_tasks(state=TaskState.ERROR):
            self.workflow.reset_from_task_id(task.id)
        self.incidents.clear()
        self.run()

    # -- state --------------------------------------------------------------------------------
    @property
    def completed(self) -> bool:
        return self.workflow.is_completed()

    @property
    def failed(self) -> bool:
        return bool(self.workflow.get_tasks(state=TaskState.ERROR))

    def active_elements(self) -> list[dict[str, str]]:
        out = []
        for task in self.workflow.get_tasks(state=_ACTIVE):
            if task.task_spec.bpmn_id is None:
                continue
            out.append({"element_id": task.task_spec.bpmn_id, "state": TaskState.get_name(task.state)})
        return out

    @property
    def data(self) -> dict[str, Any]:
        if self.completed:
            return dict(self.workflow.data)
        return dict(self.workflow.last_task.data) if self.workflow.last_task else {}

    # -- internals ----------------------------------------------------------------------------
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
        instructions = ext.get("instructionsForEndUser") or ""
        if instructions and "{" in instructions:
            try:
                instructions = _templates.from_string(instructions).render(**task.data)
            except Exception:  # noqa: BLE001 - a bad template must not hide the task
                pass
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
        )

    def _record(self, task) -> Step | None:
        spec = task.task_spec
        if spec.bpmn_id is None:
            return None
        step = Step(
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            kind=type(spec).__name__,
            task_id=str(task.id),
            completed_at=clock.now(),
            lane=spec.lane,
        )
        self.steps.append(step)
        return step


def _message_definition(definition, name: str):
    if isinstance(definition, MessageEventDefinition) and definition.name == name:
        return definition
    for inner in getattr(definition, "event_definitions", None) or []:
        if isinstance(inner, MessageEventDefinition) and inner.name == name:
            return inner
    return None


def _message_names(definition) -> list[str]:
    if isinstance(definition, MessageEventDefinition):
        return [definition.name]
    return [d.name for d in getattr(definition, "event_definitions", None) or []
            if isinstance(d, MessageEventDefinition)]


def _incident_from(error: Exception) -> Incident:
    task_spec = getattr(error, "task_spec", None)
    element = getattr(task_spec, "bpmn_id", None) if task_spec is not None else None
    cause = error
    # SpiffWorkflow wraps the sandbox's error; report the original, which says what was refused.
    while cause is not None and not isinstance(cause, ScriptError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ScriptError):
        kind = type(cause).__name__.replace("Script", "").lower() or "script"
        message = getattr(cause, "message", None) or str(cause)
        line = getattr(cause, "line", None)
    else:
        kind = "script"
        message = getattr(error, "error_type", None) and f"{error.error_type}: {error}" or str(error)
        line = getattr(error, "line_number", None)
    return Incident(element=element, message=message, kind=kind or "script", line=line)
