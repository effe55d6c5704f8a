"""Turning rows into the API's documented shapes (shared by the instance and task endpoints)."""
from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import in_session
from ..designer_names import designer, instructions
from ..i18n import designer_texts
from ..instances import form_schema
from ..models import DeploymentFile, InstanceStep, OpenTask, ProcessInstance, User, utcnow
from ..workflows import deployment_of


def _usernames(s: Session, ids) -> dict[int, str]:
    names = {}
    missing = set()
    for user_id in {i for i in ids if i}:
        # Users already in the session (the caller, an instance's initiator) need no query.
        user = in_session(s, User, user_id)
        if user is not None:
            names[user_id] = user.username
        else:
            missing.add(user_id)
    if missing:
        names.update(s.execute(select(User.id, User.username).where(User.id.in_(missing))).all())
    return names


# Mutations answer with the instance and its most recent steps; GET returns the whole history.
RECENT_HISTORY = 20


def completed_elements(s: Session, instance_id: int) -> list[str]:
    first = (select(InstanceStep.element_id, func.min(InstanceStep.id).label("first"))
             .where(InstanceStep.instance_id == instance_id).group_by(InstanceStep.element_id).subquery())
    return list(s.scalars(select(first.c.element_id).order_by(first.c.first)))


def _history(s: Session, instance_id: int, limit: int | None) -> list:
    """The instance's last `limit` steps (all if None), oldest first, with who did them and how many
    steps there are in all: one statement (the count is an uncorrelated subquery, run once)."""
    mine = InstanceStep.instance_id == instance_id
    page = select(InstanceStep.id, InstanceStep.element_id, InstanceStep.name, InstanceStep.kind,
                  InstanceStep.completed_at, InstanceStep.decision, InstanceStep.opinion,
                  InstanceStep.user_id).where(mine).order_by(InstanceStep.id.desc())
    if limit is not None:
        page = page.limit(limit)
    page = page.subquery()
    total = select(func.count()).select_from(InstanceStep).where(mine).scalar_subquery()
    return s.execute(
        select(page.c.element_id, page.c.name, page.c.kind, page.c.completed_at, page.c.decision,
               page.c.opinion, User.username, total.label("total"))
        .outerjoin(User, User.id == page.c.user_id).order_by(page.c.id)).all()


def instance(s: Session, row: ProcessInstance, with_history: bool = True, one_time=None,
             history_limit: int | None = None) -> dict:
    names = _usernames(s, [row.started_by])
    out = {
        "id": row.id,
        "process_key": row.process_key,
        "version": row.version,
        "business_key": row.business_key,
        "state": row.state,
        "started_by": names.get(row.started_by),
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "active_elements": sorted({a["element_id"] for a in row.active_elements or []}),
        "incidents": row.incidents or [],
    }
    if with_history:
        # completed_elements from one DISTINCT query; history rows (and their JSON) only as many as asked,
        # so a response's cost does not grow with an old instance's history.
        out["completed_elements"] = completed_elements(s, row.id)
        steps = _history(s, row.id, history_limit)
        out["history_total"] = steps[0].total if steps else 0
        out["history"] = [{
            "element_id": st.element_id, "name": designer(st.name), "kind": st.kind, "user": st.username,
            "completed_at": st.completed_at, "decision": st.decision, "opinion": st.opinion,
        } for st in steps]
    if one_time is not None:
        out["one_time_secrets"] = one_time
    return out


def task(s: Session, t: OpenTask, full: bool = False) -> dict:
    names = _usernames(s, [t.assignee_id] + [c.user_id for c in t.candidates])
    out = {
        "id": t.id,
        "instance_id": t.instance_id,
        "process_key": t.process_key,
        "element_id": t.element_id,
        "name": designer(t.name),
        "lane": t.lane,
        "assignee": names.get(t.assignee_id),
        "candidates": {
            "users": sorted(names[c.user_id] for c in t.candidates if c.user_id in names),
            "groups": sorted(c.group_code for c in t.candidates if c.group_code),
        },
        "created_at": t.created_at,
        "due_at": t.due_at,
        "overdue": bool(t.overdue) or (t.due_at is not None and t.due_at <= utcnow()),
        "approval": t.approval,
        "instructions": instructions(t),
    }
    if full:
        out["form"] = form_schema(s, t)
        out["ui_schema"] = _ui_schema(s, t)
        out["data"] = t.data or {}
    return out


def _ui_schema(s: Session, t: OpenTask) -> dict | None:
    if not t.ui_form:
        return None
    row = s.get(ProcessInstance, t.instance_id)
    text = s.scalar(select(DeploymentFile.content).where(
        DeploymentFile.deployment_id == deployment_of(s, row.definition_id), DeploymentFile.name == t.ui_form))
    return designer_texts(json.loads(text)) if text else None
