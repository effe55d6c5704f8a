"""A process instance told for people: who started it, what was filled in, every step with who
acted, when, the decision and the opinion, and where it stands now (R-WF-2, R-SEC-10).

Read from the history and open-task projections (through the API's row shapes), never from the
engine state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import field_formats, forms
from ..api import views
from ..designer_names import designer
from ..i18n import designer_texts
from ..instances import ENDED
from ..models import DeploymentFile, InstanceStep, OpenTask, ProcessDefinition, ProcessInstance, User
from ..workspace_models import ApplicationTracking
from . import fields

HIDDEN_KINDS = ("Gateway", "ScriptTask")  # the engine's bookkeeping, not something a person did


@dataclass
class Step:
    name: str
    kind: str
    who: str | None
    at: Any
    decision: str | None = None
    decision_label: str | None = None
    opinion: str | None = None


@dataclass
class Waiting:
    task_id: str
    name: str
    who: list[str]
    assignee: str | None
    due_at: Any


@dataclass
class Story:
    row: ProcessInstance
    process_name: str
    starter: User | None
    steps: list[Step] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    submitted: list[tuple[str, str]] = field(default_factory=list)
    public: bool = False  # applied for on the public page by someone without an account

    @property
    def decisions(self) -> list[Step]:
        return [st for st in self.steps if st.decision]

    @property
    def finished(self) -> bool:
        return self.row.state in ENDED

    @property
    def title(self) -> str:
        return f"{self.process_name} #{self.row.id}" + (f" · {self.row.business_key}" if self.row.business_key else "")


def decision_titles() -> dict[str, str]:
    return {o["const"]: o["title"] for o in forms.decision_block()["decision"]["oneOf"]}


def tell(s: Session, row: ProcessInstance, with_data: bool = True) -> Story:
    definition = s.get(ProcessDefinition, row.definition_id)
    starter = s.get(User, row.started_by) if row.started_by else None
    story = Story(row=row, process_name=designer(definition.name) or row.process_key, starter=starter)
    if starter is None:
        story.public = s.scalar(select(ApplicationTracking.id).where(ApplicationTracking.instance_id == row.id)) is not None
    story.waiting = _waiting(s, row)
    shape = views.instance(s, row)
    names = dict(s.execute(select(User.username, User.full_name).where(
        User.username.in_({h["user"] for h in shape["history"] if h["user"]} or {""}))).all())
    titles = decision_titles()
    for h in shape["history"]:
        if h["kind"].endswith(HIDDEN_KINDS):
            continue
        who = names.get(h["user"], h["user"])
        if who is None and h["kind"] == "StartEvent" and starter is not None:
            who = starter.full_name
        elif who is None and h["kind"] == "UserTask":
            who = _("the applicant (no account yet)")  # completed through a tracking code
        name = h["name"] or h["element_id"]
        if h["kind"] == "moved_back":  # an administrator sent the instance back; the opinion is the reason
            name = _("Moved back to: %(step)s", step=name)
        elif h["kind"] == "withdrawn":  # the initiator took the request back; the opinion is the reason
            name = _("Withdrawn by the applicant")
        story.steps.append(Step(name=name, kind=h["kind"], who=who, at=h["completed_at"],
                                decision=h["decision"], decision_label=titles.get(h["decision"] or ""),
                                opinion=h["opinion"]))
    if with_data:
        story.submitted = submitted(s, row, definition)
    return story


def submitted(s: Session, row: ProcessInstance, definition: ProcessDefinition) -> list[tuple[str, str]]:
    """What people filled in, latest value of each field, labelled as their forms labelled it."""
    data: dict[str, Any] = {}
    for step_data in s.scalars(select(InstanceStep.data).where(
            InstanceStep.instance_id == row.id, InstanceStep.decision.is_(None)).order_by(InstanceStep.id)):
        data.update(step_data or {})
    if not data:
        return []
    schemas = []
    for text in s.scalars(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id == definition.deployment_id, DeploymentFile.kind == "form")
            .order_by(DeploymentFile.name)):
        try:
            schemas.append(designer_texts(json.loads(text)))
        except ValueError:
            continue
    return fields.describe(data, fields.labels(schemas), skip=set(forms.decision_block()))


def _waiting(s: Session, row: ProcessInstance) -> list[Waiting]:
    if row.state not in ("running", "error"):
        return []
    out = []
    for task in s.scalars(select(OpenTask).where(OpenTask.instance_id == row.id).order_by(OpenTask.created_at)):
        shape = views.task(s, task)
        full = dict(s.execute(select(User.username, User.full_name).where(
            User.username.in_(set(shape["candidates"]["users"]) | {shape["assignee"] or ""}))).all())
        who = [full.get(u, u) for u in shape["candidates"]["users"]]
        who += [field_formats.name_of("group", g, s) for g in shape["candidates"]["groups"]]
        out.append(Waiting(task_id=task.id, name=designer(task.name), who=who,
                           assignee=full.get(shape["assignee"], shape["assignee"]) if shape["assignee"] else None,
                           due_at=task.due_at))
    return out
