"""Moving running instances of a process to a newer version (an administrator's decision).

An instance moves when every element it is active at (a waiting user task, a timer, a message
catch, a failed step) still exists, by id, in the target version. SpiffWorkflow's own migration
helpers (SpiffWorkflow.bpmn.util.diff) align the instance's tasks with the new spec; tasks that are
ready are re-predicted from the new diagram, while waiting events keep their state, so a running
timer is not restarted. An instance that cannot move stays as it is and is reported with the
elements that are missing. Each migration is audited.

A dry run goes through the same steps on the instances as loaded (the move and the reload on the
new version included) and keeps nothing: it says which instances would move, from where, and which
would stay and why, so an administrator sees the outcome before deciding.
"""
from __future__ import annotations

from flask_babel import gettext as _
from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import codec
from engine.runtime import Instance

from .. import audit, auth
from .. import instances as units
from ..errors import Forbidden, NotFound
from ..models import OpenTask, ProcessDefinition, ProcessInstance, User
from ..services import UnitContext
from ..workflows import process_for, script_engine
from .catalogue import may_edit
from .models import ProcessModel

_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


def require_migrator(user: User, model: ProcessModel) -> User:
    """Administrators of the owning department who design it, and system administrators."""
    if user.role == "system_admin" or (auth.is_admin_of(user, model.department_id) and may_edit(user, model)):
        return user
    raise Forbidden(_("Only an administrator of the owning department may migrate its instances."))


def _target(s: Session, key: str, version: int | None) -> ProcessDefinition:
    query = select(ProcessDefinition).where(ProcessDefinition.key == key)
    query = query.where(ProcessDefinition.version == version) if version else \
        query.order_by(ProcessDefinition.version.desc()).limit(1)
    definition = s.scalar(query)
    if definition is None:
        raise NotFound(_("Version %(v)s of '%(key)s' does not exist.", v=version or "-", key=key))
    return definition


def _missing(workflow, new_process) -> list[str]:
    """Ids of the elements the instance is active at that the new version does not have."""
    known = set(new_process.spec.task_specs)
    for sub in new_process.subprocess_specs.values():
        known |= set(sub.task_specs)
    out = []
    for task in workflow.get_tasks(state=_ACTIVE):
        element = task.task_spec.bpmn_id
        if element is not None and element not in known and element not in out:
            out.append(element)
    return out


def _move(workflow, new_process) -> None:
    top, subs = diff_workflow(codec._serializer.registry, workflow, new_process.spec, new_process.subprocess_specs)
    migrate_workflow(top, workflow, new_process.spec, reset_mask=TaskState.READY)
    for sub_id, sub_diff in subs.items():
        sub = workflow.subprocesses[sub_id]
        if sub_diff is not None:
            migrate_workflow(sub_diff, sub, new_process.subprocess_specs[sub.spec.name], reset_mask=TaskState.READY)
    workflow.subprocess_specs = new_process.subprocess_specs


def migrate(s: Session, user: User, model: ProcessModel, to_version: int | None = None,
            instance_ids: list[int] | None = None, dry_run: bool = False) -> dict:
    require_migrator(user, model)
    target = _target(s, model.key, to_version)
    new_process = process_for(s, target.deployment_id, model.key)
    query = select(ProcessInstance.id).where(
        ProcessInstance.process_key == model.key, ProcessInstance.state.in_(("running", "error")),
        ProcessInstance.version < target.version).order_by(ProcessInstance.id)
    if instance_ids:
        query = query.where(ProcessInstance.id.in_(instance_ids))
    migrated, refused = [], []
    for instance_id in list(s.scalars(query)):
        row = units._load(s, instance_id, for_update=not dry_run)
        old_version = row.version
        instance = units._engine_instance(s, row)
        at = [a["element_id"] for a in instance.active_elements()]
        missing = _missing(instance.workflow, new_process)
        if missing:
            refused.append({"id": row.id, "version": old_version, "elements": missing, "at": at, "reason": _(
                "active at %(elements)s, which version %(v)s does not have", elements=", ".join(missing),
                v=target.version)})
            continue
        try:
            _move(instance.workflow, new_process)
            state = instance.dumps()
            codec.loads(state, new_process.spec, new_process.subprocess_specs)  # it must load on the new spec
        except Exception as e:  # noqa: BLE001 - an instance that cannot move stays where it is
            refused.append({"id": row.id, "version": old_version, "elements": [], "at": at,
                            "reason": _("cannot be moved: %(error)s", error=str(e))})
            continue
        migrated.append({"id": row.id, "from": old_version, "to": target.version, "at": at})
        if dry_run:
            continue
        moved = Instance.load(new_process, state, script_engine())
        row.definition_id, row.version = target.id, target.version
        units._persist(s, row, moved, user, UnitContext(s, user.id, row.id))
        _refresh_open_tasks(s, row, moved)
        audit.record(s, "instance_migrated", "process_instance", row.id, actor_id=user.id,
                     detail={"process_key": model.key, "from": old_version, "to": target.version})
    if refused and not dry_run:
        audit.record(s, "instance_migration_refused", "process_model", model.key, actor_id=user.id,
                     detail={"to": target.version, "instances": [r["id"] for r in refused]})
    return {"version": target.version, "dry_run": dry_run, "migrated": migrated, "refused": refused}


def _refresh_open_tasks(s: Session, row: ProcessInstance, instance: Instance) -> None:
    """Open tasks keep their ids (and claims) across a migration; what they show comes from the new version."""
    views = {t.id: t for t in instance.user_tasks()}
    for task in s.scalars(select(OpenTask).where(OpenTask.instance_id == row.id)):
        view = views.get(task.id)
        if view is not None:
            task.name, task.form, task.ui_form, task.lane = view.name, view.form, view.ui_form, view.lane
            task.instructions = view.instructions
