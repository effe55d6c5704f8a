"""What an account still owns, which must be handed over before it is deactivated (R-ACC-4), and
the deactivation itself: one rule for the permission_change procedure and for administrators.

The platform refuses to deactivate an account that still holds open tasks (assigned to it, or
offered to it alone), running processes it started, or live documents it owns.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit
from .documents.models import Document
from .models import AuthToken, OpenTask, ProcessInstance, TaskCandidate, User, utcnow

RUNNING = ("running", "error")


@dataclass
class Holdings:
    tasks: list[OpenTask]
    instances: list[ProcessInstance]
    documents: list[Document]

    def __bool__(self) -> bool:
        return bool(self.tasks or self.instances or self.documents)

    def counts(self) -> dict[str, int]:
        return {"open_tasks": len(self.tasks), "instances": len(self.instances), "documents": len(self.documents)}


def documents(s: Session, user: User) -> list[Document]:
    """Live documents the account owns; archived ones are kept as records and need no successor."""
    return list(s.scalars(select(Document).where(Document.owner_id == user.id, Document.state == "active")
                          .order_by(Document.id)))


def owned(s: Session, user: User) -> tuple[list[OpenTask], list[ProcessInstance]]:
    """What the account still owns: open tasks it holds or alone may do, and running instances it
    started. Tasks offered to a group or to several people go on without this user."""
    assigned = select(OpenTask.id).where(OpenTask.assignee_id == user.id)
    candidate_of = select(TaskCandidate.task_id).where(TaskCandidate.user_id == user.id)
    tasks = []
    for task in s.scalars(select(OpenTask).where(OpenTask.id.in_(assigned) | OpenTask.id.in_(candidate_of))
                          .order_by(OpenTask.created_at, OpenTask.id)):
        sole = len(task.candidates) == 1 and task.candidates[0].user_id == user.id
        if task.assignee_id == user.id or (task.assignee_id is None and sole):
            tasks.append(task)
    instances = list(s.scalars(select(ProcessInstance).where(
        ProcessInstance.started_by == user.id, ProcessInstance.state.in_(RUNNING)).order_by(ProcessInstance.id)))
    return tasks, instances


def holdings(s: Session, user: User) -> Holdings:
    tasks, instances = owned(s, user)
    return Holdings(tasks, instances, documents(s, user))


def deactivate(s: Session, user: User, actor_id: int | None, detail: dict) -> int:
    """Deactivate the account and end its sessions and tokens at once (the caller has checked that
    nothing is left to hand over); audited as `account_deactivated`. Returns the tokens revoked."""
    user.active = False
    revoked = s.execute(update(AuthToken).where(AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow())).rowcount
    audit.record(s, "account_deactivated", "user", user.id, actor_id=actor_id,
                 detail={"username": user.username, "tokens_revoked": revoked, **detail})
    return revoked
