"""Starting an instance through one chosen start event.

A process may have several start events (by hand, by message, by timer). SpiffWorkflow opens all
of them at once; an instance started by hand would then also wait at its message start and could
be "started" a second time. Here the start events that were not chosen are cancelled before the
first step, so one instance has one beginning.
"""
from __future__ import annotations

from datetime import UTC, timedelta

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from . import clock
from .loader import ParsedProcess
from .runtime import Instance, message_names


def message_starts(process: ParsedProcess) -> dict[str, str]:
    """Message name → start event id, for the process's message start events."""
    out = {}
    for spec in process.spec.task_specs.values():
        if isinstance(spec, StartEvent) and spec.bpmn_id:
            for name in message_names(spec.event_definition):
                out[name] = spec.bpmn_id
    return out


def _open(process: ParsedProcess, script_engine, data: dict | None, prepare=None) -> BpmnWorkflow:
    workflow = BpmnWorkflow(process.spec, process.subprocess_specs, script_engine=script_engine)
    if prepare is not None:
        prepare(workflow)  # before any start event is evaluated
    ready = workflow.get_next_task(state=TaskState.READY)
    if data and ready is not None:
        # Initial data goes on the READY start task; workflow.data is not inherited (pitfall P13).
        ready.set_data(**data)
    # Run Start (and StartEventSplit when there are several start events) so the start events exist.
    for _ in range(2):
        task = workflow.get_next_task(state=TaskState.READY, manual=False)
        if task is None or task.task_spec.bpmn_id is not None:
            break
        task.run()
    return workflow


def _top_start_events(workflow: BpmnWorkflow):
    return [t for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK, skip_subprocesses=True)
            if isinstance(t.task_spec, StartEvent) and t.workflow is workflow
            and t.parent is not None and t.parent.task_spec.bpmn_id is None]


def _keep_only(workflow: BpmnWorkflow, keep) -> None:
    for task in _top_start_events(workflow):
        if not keep(task):
            task.cancel()


def begin(process: ParsedProcess, script_engine, data: dict | None = None) -> Instance:
    """Start by hand: through the start events without an event definition."""
    workflow = _open(process, script_engine, data)
    if len(_top_start_events(workflow)) > 1:
        _keep_only(workflow, lambda t: isinstance(t.task_spec.event_definition, NoneEventDefinition))
    instance = Instance(process, workflow)
    instance.run()
    return instance


def begin_by_message(process: ParsedProcess, script_engine, name: str, payload: dict | None) -> Instance:
    workflow = _open(process, script_engine, None)
    _keep_only(workflow, lambda t: name in message_names(t.task_spec.event_definition))
    instance = Instance(process, workflow)
    instance.run()
    instance.deliver(name, payload or {})
    return instance


def begin_by_timer(process: ParsedProcess, script_engine, element_id: str) -> Instance:
    """Start through timer start event `element_id`, firing it now, exactly once.

    The start event's timer is set before it is ever evaluated, so its own expression (which may
    already be due, or be an unbounded cycle) never arms inside this instance."""
    past = (clock.now() - timedelta(seconds=1)).astimezone(UTC).isoformat()

    def arm(workflow: BpmnWorkflow) -> None:
        for task in workflow.get_tasks(state=TaskState.ANY_MASK):
            if task.task_spec.bpmn_id != element_id:
                continue
            definition = task.task_spec.event_definition
            if isinstance(definition, CycleTimerEventDefinition):
                # One cycle: the first refresh grows this period's path, the next finds none left
                # and completes the start event without another path.
                task.internal_data["event_value"] = {"cycles": 1, "next": past, "duration": 1.0}
            elif isinstance(definition, (DurationTimerEventDefinition, TimeDateEventDefinition)):
                task.internal_data["event_value"] = past

    workflow = _open(process, script_engine, None, prepare=arm)
    _keep_only(workflow, lambda t: t.task_spec.bpmn_id == element_id)
    instance = Instance(process, workflow)
    instance.run()
    instance.fire_due_timers()
    instance.fire_due_timers()
    return instance

