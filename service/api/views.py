"""Turning rows into the API's documented shapes (shared by the instance and task endpoints)."""
from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..instances import form_schema
from ..models import DeploymentFile, InstanceStep, OpenTask, ProcessDefinition, ProcessInstance, User, utcnow


def _usernames(s: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(s.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


# Mutations answer with the instance and its most recent steps; GET returns the whole history.
RECENT_HISTORY = 20


def completed_elements(s: Session, instance_id: int) -> list[str]:
    first = (select(InstanceStep.element_id, func.min(InstanceStep.id).label("first"))
             .where(InstanceStep.instance_id == instance_id).group_by(InstanceStep.element_id).subquery())
    return list(s.scalars(select(first.c.element_id).order_by(first.c.first)))


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
        query = select(InstanceStep).where(InstanceStep.instance_id == row.id)
        out["history_total"] = s.scalar(select(func.count()).select_from(query.subquery()))
        if history_limit is not None:
            steps = list(reversed(s.scalars(query.order_by(InstanceStep.id.desc()).limit(history_limit)).all()))
        else:
            steps = s.scalars(query.order_by(InstanceStep.id)).all()
        names.update(_usernames(s, [st.user_id for st in steps]))
        out["history"] = [{
            "element_id": st.element_id, "name": st.name, "kind": st.kind, "user": names.get(st.user_id),
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
        "name": t.name,
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
        "instructions": t.instructions,
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
    definition = s.get(ProcessDefinition, row.definition_id)
    text = s.scalar(select(DeploymentFile.content).where(
        DeploymentFile.deployment_id == definition.deployment_id, DeploymentFile.name == t.ui_form))
    return json.loads(text) if text else None
