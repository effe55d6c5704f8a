"""Drafts of task forms (issue 6): what one person half filled in, kept to finish later.

A draft belongs to one task and one person and is shown to nobody else. Nothing is validated on
saving (it is unfinished by definition) except its size. The draft goes when the task completes
(instances._sync_open_tasks deletes drafts of tasks that left the projection).
"""
from __future__ import annotations

import json

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import Invalid
from .models import OpenTask, User, utcnow
from .workspace_models import TaskDraft

MAX_BYTES = 64 * 1024


def load(s: Session, task: OpenTask, user: User) -> TaskDraft | None:
    return s.scalar(select(TaskDraft).where(TaskDraft.task_id == task.id, TaskDraft.user_id == user.id))


def save(s: Session, task: OpenTask, user: User, data: dict) -> TaskDraft:
    """Keep `data` as the user's draft of the task (replacing an earlier one)."""
    if len(json.dumps(data, ensure_ascii=False).encode()) > MAX_BYTES:
        raise Invalid(_("The draft is too large to save (at most %(kb)d KB).", kb=MAX_BYTES // 1024))
    draft = load(s, task, user)
    if draft is None:
        draft = TaskDraft(task_id=task.id, user_id=user.id)
        s.add(draft)
    draft.data = data
    draft.saved_at = utcnow()
    return draft


def discard(s: Session, task: OpenTask, user: User) -> None:
    draft = load(s, task, user)
    if draft is not None:
        s.delete(draft)
