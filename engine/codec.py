"""Instance state <-> JSON, with the process spec stored by reference and finished history cut off.

Two choices keep a request's cost flat as an instance ages:
- the deployed spec is not embedded (it is immutable and cached per deployment; the instance row
  names it), which halves the document (briefing §9);
- `compact` drops finished tasks above the open part of the task tree. The step history lives in
  the service's history table, so the engine state holds only what can still run. This also keeps
  the tree shallow, which avoids SpiffWorkflow's silent stall of gateway loops past depth 1000
  (pitfall P9).
"""
from __future__ import annotations

import json
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

FORMAT = "inkless/1"


class _SpecByReference(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        # `loads` puts the cached spec objects into the dict in place of the names.
        spec = dct.pop("spec")
        subprocess_specs = dct.pop("subprocess_specs", {})
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], _uuid, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _uuid(value):
    from uuid import UUID

    return UUID(value)


_config = dict(SPIFF_CONFIG)
_config[BpmnWorkflow] = _SpecByReference
_serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_config))


def dumps(workflow: BpmnWorkflow) -> str:
    registry = _serializer.registry
    registry._encoder_mode = True
    try:
        dct = _serializer.to_dict(workflow)
        dct[_serializer.VERSION_KEY] = _serializer.VERSION
        dct["format"] = FORMAT
        return json.dumps(dct, cls=_serializer._encoder_cls, separators=(",", ":"), ensure_ascii=False)
    finally:
        registry._encoder_mode = False


def loads(text: str, spec, subprocess_specs: dict) -> BpmnWorkflow:
    dct: dict[str, Any] = json.loads(text)
    if dct.pop("format", None) != FORMAT:
        raise ValueError("not an Inkless instance state")
    _serializer.migrate(dct)
    dct["spec"] = spec
    dct["subprocess_specs"] = subprocess_specs
    return _serializer.from_dict(dct)


def serializer_version() -> str:
    return _serializer.VERSION


def compact(workflow: BpmnWorkflow, keep: int = 12) -> int:
    """Remove finished tasks that lie above every open task, keeping `keep` of them as context.

    The tree keeps its Root and Start tasks (message and event-subprocess starts are triggered
    under them); the cut splices the first kept task directly under Start. Returns how many tasks
    were removed. Nothing is cut when an open task is not below the chain (e.g. a waiting event
    subprocess), so correctness never depends on the heuristic.
    """
    root = workflow.task_tree
    start = next((c for c in root.children if c.task_spec.name == "Start"), None)
    if start is None or len(start.children) != 1:
        return 0
    open_tasks = [t for t in workflow.tasks.values() if not t.has_state(TaskState.COMPLETED | TaskState.CANCELLED)]
    if not open_tasks:
        return 0
    # Lowest common ancestor of all open tasks, as a path from Start downwards.
    common: list | None = None
    for task in open_tasks:
        path = []
        node = task
        while node is not None:
            path.append(node)
            node = node.parent
        path.reverse()
        if common is None:
            common = path
        else:
            n = 0
            while n < len(common) and n < len(path) and common[n] is path[n]:
                n += 1
            common = common[:n]
    if not common or len(common) < 3 or common[1] is not start:
        return 0
    chain = common[2:]  # tasks under Start down to the common ancestor
    cut = len(chain) - 1 - keep  # chain[cut] becomes Start's child
    if cut <= 0:
        return 0
    new_top = chain[cut]
    removed = 0
    doomed: list = []
    for i, node in enumerate(chain[:cut]):
        doomed.append(node)
        doomed.extend(t for child in node.children if child is not chain[i + 1] for t in _subtree(child))
    for task in doomed:
        _drop_subprocess(workflow, task.id)
        del workflow.tasks[task.id]
        removed += 1
    start._children = [new_top.id]
    new_top._parent = start.id
    if workflow.last_task is not None and workflow.last_task.id not in workflow.tasks:
        workflow.last_task = None
    return removed


def _subtree(task) -> list:
    out, stack = [], [task]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out


def _drop_subprocess(workflow: BpmnWorkflow, task_id) -> None:
    sub = workflow.subprocesses.pop(task_id, None)
    if sub is None:
        return
    for inner_id in list(sub.tasks):
        _drop_subprocess(workflow, inner_id)
