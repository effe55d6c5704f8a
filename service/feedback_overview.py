"""What users raise through feedback, taken together (R-SUP-2, R-WF-4): per category how many came
in during a period and how long answering took, per responsible department what is still open and
overdue, and the open items themselves — so a supervisor sees what people complain about most and
where answers stall, not one feedback at a time.

Read from the feedback procedure's own records: the category and subject as submitted
(`submit_feedback`'s step data), the responsible department as the platform's triage set it
(`triage_feedback`), the instance's start and end. Before triage an item is the platform
management department's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .analytics import percentile
from .hierarchy import platform_department
from .i18n import designer_texts
from .models import (
    Department,
    DeploymentFile,
    InstanceStep,
    OpenTask,
    ProcessDefinition,
    ProcessInstance,
    utcnow,
)
from .procedures.indicators import Period

KEY = "feedback"
SUBMIT, TRIAGE = "submit_feedback", "triage_feedback"
FORM = "feedback.json"


@dataclass
class Item:
    instance_id: int
    subject: str
    category: str
    department_id: int | None
    started_at: datetime
    ended_at: datetime | None
    overdue: bool = False

    @property
    def hours(self) -> float | None:
        return round((self.ended_at - self.started_at).total_seconds() / 3600, 1) if self.ended_at else None


@dataclass
class Group:
    key: str
    name: str
    received: int = 0
    answered: int = 0
    open: int = 0
    overdue: int = 0
    hours: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        ordered = sorted(self.hours)
        return {"key": self.key, "name": self.name, "received": self.received, "answered": self.answered,
                "open": self.open, "overdue": self.overdue,
                "median_hours": _r(percentile(ordered, 0.5)), "p90_hours": _r(percentile(ordered, 0.9))}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def category_names(s: Session) -> dict[str, str]:
    """The categories as the latest feedback form names them (in the reader's language)."""
    definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == KEY)
                          .order_by(ProcessDefinition.version.desc()).limit(1))
    if definition is None:
        return {}
    text = s.scalar(select(DeploymentFile.content).where(DeploymentFile.deployment_id == definition.deployment_id,
                                                         DeploymentFile.name == FORM))
    try:
        options = designer_texts(json.loads(text))["properties"]["category"]["oneOf"] if text else []
    except (ValueError, KeyError, TypeError):
        return {}
    return {o["const"]: o.get("title", o["const"]) for o in options if isinstance(o, dict) and "const" in o}


def _items(s: Session, period: Period) -> list[Item]:
    """Feedback started in the period, and every one still open whenever it started."""
    rows = s.execute(select(ProcessInstance.id, ProcessInstance.started_at, ProcessInstance.ended_at,
                            ProcessInstance.state).where(
        ProcessInstance.process_key == KEY, ProcessInstance.state != "cancelled",
        ((ProcessInstance.started_at >= period.start) & (ProcessInstance.started_at < period.end))
        | ProcessInstance.state.in_(("running", "error")))).all()
    ids = [r.id for r in rows]
    if not ids:
        return []
    submitted: dict[int, dict] = {}
    triaged: dict[int, dict] = {}
    for instance_id, element, data in s.execute(select(InstanceStep.instance_id, InstanceStep.element_id,
                                                       InstanceStep.data).where(
            InstanceStep.instance_id.in_(ids), InstanceStep.element_id.in_((SUBMIT, TRIAGE)))
            .order_by(InstanceStep.id)):
        (submitted if element == SUBMIT else triaged)[instance_id] = data or {}
    codes = dict(s.execute(select(Department.code, Department.id)).all())
    platform = platform_department(s)
    overdue = set(s.scalars(select(OpenTask.instance_id).where(
        OpenTask.instance_id.in_(ids), (OpenTask.overdue.is_(True)) | (OpenTask.due_at <= utcnow()))))
    out = []
    for r in rows:
        answered_by = (triaged.get(r.id) or {}).get("department")
        department_id = codes.get(answered_by) if answered_by else (platform.id if platform else None)
        data = submitted.get(r.id, {})
        out.append(Item(r.id, str(data.get("subject") or ""), str(data.get("category") or "other"), department_id,
                        r.started_at, r.ended_at if r.state == "completed" else None, r.id in overdue))
    return out


def overview(s: Session, period: Period, department_id: int | None = None) -> dict:
    """Categories, departments and open items for `period` (of one department's when given)."""
    items = [i for i in _items(s, period) if department_id is None or i.department_id == department_id]
    names = category_names(s)
    departments = {d.id: d for d in s.scalars(select(Department))}
    categories: dict[str, Group] = {}
    by_department: dict[int | None, Group] = {}
    for item in items:
        groups = (categories.setdefault(item.category, Group(item.category, names.get(item.category, item.category))),
                  by_department.setdefault(item.department_id, Group(
                      departments[item.department_id].code if item.department_id in departments else "",
                      departments[item.department_id].name if item.department_id in departments else "")))
        in_period = period.start <= item.started_at < period.end
        for group in groups:
            group.received += in_period
            if item.ended_at is not None:
                group.answered += in_period
                if in_period:
                    group.hours.append(item.hours)
            else:
                group.open += 1
                group.overdue += item.overdue
    open_items = sorted((i for i in items if i.ended_at is None), key=lambda i: i.started_at)
    return {
        "total": sum(g.received for g in categories.values()),
        "categories": sorted((g.as_dict() for g in categories.values()), key=lambda g: (-g["received"], g["key"])),
        "departments": sorted((g.as_dict() for g in by_department.values()), key=lambda g: (-g["open"], g["key"])),
        "open": [{"instance_id": i.instance_id, "subject": i.subject, "category": i.category,
                  "category_name": names.get(i.category, i.category),
                  "department": departments[i.department_id].code if i.department_id in departments else None,
                  "department_name": departments[i.department_id].name if i.department_id in departments else None,
                  "started_at": i.started_at, "overdue": i.overdue} for i in open_items],
    }
