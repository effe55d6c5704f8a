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
import threading
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from . import bounds
from .errors import N_, DataProblem, DataRejected

FORMAT = "inkless/1"
# An instance's whole engine state in JSON characters. Every request on the instance reads and
# writes it, so task data past this (a script's 100 MB string) is refused rather than stored.
MAX_STATE_CHARS = 8 * 1024 * 1024


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


# The registry's encoder mode is one flag on a registry shared by every thread (requests run in
# worker threads): without the lock one thread's `finally` would switch it off under another.
_encoder_lock = threading.Lock()


def dumps(workflow: BpmnWorkflow) -> str:
    """The instance state as JSON; DataRejected names the variable when its data cannot be stored
    (engine/bounds.py) or would make the state larger than MAX_STATE_CHARS."""
    registry = _serializer.registry
    with _encoder_lock:
        registry._encoder_mode = True
        try:
            dct = _serializer.to_dict(workflow)
            dct[_serializer.VERSION_KEY] = _serializer.VERSION
            dct["format"] = FORMAT
            found = _stored_data_problem(dct)
            if found is not None:
                raise DataRejected(found)
            text = json.dumps(dct, cls=_serializer._encoder_cls, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            # SpiffWorkflow compares and the encoder walks data recursively: name the culprit.
            found = _deepest(workflow)
            if found is None:
                raise
            raise DataRejected(found) from None
        finally:
            registry._encoder_mode = False
    if len(text) > MAX_STATE_CHARS:
        raise DataRejected(_largest(dct, len(text)))
    return text


def _stored_data(dct: dict):
    """The task data the serialized state writes: each task's own changes (the serializer stores
    a delta against the parent) and full data where there is no parent, in every subprocess too."""
    yield dct.get("data") or {}
    for workflow in (dct, *dct.get("subprocesses", {}).values()):
        for task in workflow.get("tasks", {}).values():
            yield task.get("data") or {}
            yield (task.get("delta") or {}).get("updates") or {}


def _stored_data_problem(dct: dict) -> DataProblem | None:
    for data in _stored_data(dct):
        if data:
            found = bounds.problem(data)
            if found is not None:
                return found
    return None


def _deepest(workflow: BpmnWorkflow) -> DataProblem | None:
    for sub in (workflow, *workflow.subprocesses.values()):
        for task in sub.get_tasks():
            found = bounds.problem(task.data)
            if found is not None:
                return found
    return None


def _largest(dct: dict, total: int) -> DataProblem:
    sizes: dict[str, int] = {}
    for data in _stored_data(dct):
        for key, value in data.items():
            size = len(json.dumps(value, cls=_serializer._encoder_cls, ensure_ascii=False))
            sizes[str(key)] = max(sizes.get(str(key), 0), size)
    name = max(sizes, key=sizes.get) if sizes else "data"
    return DataProblem(name, N_("makes the instance's data %(size)s MB; at most %(limit)s MB is kept"),
                       {"size": _megabytes(total), "limit": _megabytes(MAX_STATE_CHARS)}, kind="size")


def _megabytes(chars: int) -> str:
    return f"{chars / (1024 * 1024):.1f}"


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


# Anything that can still change: predicted, waiting, ready, started, and failed (retry re-runs it).
_OPEN = TaskState.NOT_FINISHED_MASK | TaskState.ERROR


def compact(workflow: BpmnWorkflow, keep: int = 12) -> int:
    """Remove finished tasks above every open task; return how many were removed.

    The task tree's root is the process's `Start` task; each of its children starts a branch (the
    BPMN start event, or a triggered event subprocess). Within a branch, the chain of finished
    tasks from the branch's head down to the lowest common ancestor of its open tasks (anything
    not COMPLETED or CANCELLED: READY, WAITING, STARTED, ERROR, predicted) is cut down:
    - the lowest `keep` tasks of the chain stay as they are (context, and at least the open
      tasks' parents: `reset_from_task_id`, i.e. retry, copies a task's data from its parent);
    - above them only a *skeleton* stays: for every task spec, its lowest occurrence, in the
      original order. SpiffWorkflow asks two questions of the ancestors of a task: "the nearest
      ancestor of spec X" (`find_ancestor`, e.g. a BoundaryEventJoin looking for its split) and
      "the nearest ancestor whose spec is one of S" (ParallelGateway's loop heuristic, which
      walks up to the process's start event when a loop re-enters a parallel gateway). The
      nearest such ancestor is always the lowest occurrence of its spec, so the skeleton gives
      the same answers as the full chain, while its length is bounded by the number of specs;
    - finished side branches hanging off the cut chain (other paths of earlier iterations) go,
      and a removed subprocess task (call activity, embedded subprocess) takes its subprocess.
    When the common ancestor is a finished split (parallel branches still running), each branch
    below it is compacted the same way, with the branch's first task as its head; otherwise a
    branch looping while its sibling waits at the join would grow without bound. Subprocesses
    that are still running are compacted the same way.

    Nothing below the common ancestor changes, and every task keeps its complete data in memory
    (the serializer delta-encodes each task against its new parent when it is written), so the
    data an open task sees is exactly what it saw before. The bounded depth also avoids
    SpiffWorkflow's silent stall of gateway loops past depth 1000 (pitfall P9).
    """
    keep = max(keep, 1)
    removed = _compact_workflow(workflow, workflow, keep)
    for task_id, sub in list(workflow.subprocesses.items()):
        if task_id in workflow.subprocesses:  # not dropped along with a cut call activity
            removed += _compact_workflow(workflow, sub, keep)
    return removed


def _compact_workflow(top: BpmnWorkflow, workflow, keep: int) -> int:
    root = workflow.task_tree
    if root is None:
        return 0
    return sum(_compact_branch(top, workflow, branch, keep) for branch in list(root.children))


def _compact_branch(top: BpmnWorkflow, workflow, head, keep: int) -> int:
    """Compact the chain from `head` (which stays) down to the common ancestor of the open tasks
    below it; then, when that ancestor is a finished split, each of its branches the same way."""
    open_tasks = [t for t in _subtree(head) if t.has_state(_OPEN)]
    if not open_tasks:
        return 0  # a finished branch (e.g. a completed event subprocess) is left as it is
    chain = _common_chain(head, open_tasks)  # head ... lowest common ancestor
    removed = _cut(top, workflow, chain, open_tasks, keep)
    lowest = chain[-1]
    if not lowest.has_state(_OPEN):
        # A parallel split (or a boundary split) with branches still running: a branch that
        # loops while its sibling waits at the join would otherwise grow without bound.
        for child in list(lowest.children):
            removed += _compact_branch(top, workflow, child, keep)
    return removed


def _cut(top: BpmnWorkflow, workflow, chain: list, open_tasks: list, keep: int) -> int:
    # A structured join inspects its split's children, not just the split: from such a split
    # down, the chain keeps its side branches too.
    protect = len(chain) - 1
    for task in open_tasks:
        split = getattr(task.task_spec, "split_task", None)
        ancestor = task.find_ancestor(split) if split else None
        if ancestor is not None and ancestor in chain:
            protect = min(protect, chain.index(ancestor))
    cut = min(len(chain) - 1 - keep, protect)
    region = chain[:cut] if cut >= 1 else []
    lowest = {node.task_spec.name: node for node in region}  # later in the chain = lower
    skeleton = [node for i, node in enumerate(region) if i == 0 or lowest[node.task_spec.name] is node]
    kept = {node.id for node in skeleton}
    doomed = [node for node in region if node.id not in kept]
    # Finished side branches above the protected part go even inside the `keep` window: they are
    # earlier rounds of a loop (a parallel branch that ended at a cancelled join, say), and a
    # ParallelGateway would count such a stale join as an arrived branch in the next round. So
    # what SpiffWorkflow sees does not depend on `keep`.
    for i in range(protect):
        doomed.extend(t for child in chain[i].children if child is not chain[i + 1] for t in _subtree(child))
    if not doomed:
        return 0
    doomed_ids = {t.id for t in doomed}
    for task in doomed:
        _drop_subprocess(top, task.id)
        top.event_manager.tasks.pop(task.id, None)
        del workflow.tasks[task.id]
    for node in chain[len(region):protect]:
        node._children = [c for c in node._children if c not in doomed_ids]
    if region:
        # Every side branch of the region is doomed (cut <= protect), so each kept node has
        # exactly one child left: the next one down.
        for upper, lower in zip(skeleton, [*skeleton[1:], chain[cut]], strict=True):
            upper._children = [lower.id]
            lower._parent = upper.id
    if workflow.last_task is not None and workflow.last_task.id in doomed_ids:
        workflow.last_task = None
    return len(doomed)


def _common_chain(branch, tasks: list) -> list:
    """The path from `branch` down to the lowest common ancestor of `tasks` (all below `branch`)."""
    chain = _path_from(branch, tasks[0])
    position = {node.id: i for i, node in enumerate(chain)}
    for task in tasks[1:]:
        node = task
        while node.id not in position:
            node = node.parent
        end = position[node.id]
        if end < len(chain) - 1:
            chain = chain[: end + 1]
            position = {n.id: i for i, n in enumerate(chain)}
    return chain


def _path_from(ancestor, task) -> list:
    path = [task]
    while path[-1] is not ancestor:
        path.append(path[-1].parent)
    path.reverse()
    return path


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
        workflow.event_manager.tasks.pop(inner_id, None)
        _drop_subprocess(workflow, inner_id)
