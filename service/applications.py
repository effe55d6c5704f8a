"""Account applications made by newcomers without an account, followed by a tracking code (R-ACC-1).

The public page starts `account_application` on behalf of nobody (the instance has no initiator)
and completes its first task with what the newcomer filled in, so the department head of the
chosen department reviews it next. The newcomer gets a tracking code: 192 random bits, shown
once, stored only as its SHA-256. The code opens exactly one thing — that application: its
status, its timeline with the reviewers' opinions, and the applicant's own task ("修改申请")
when a reviewer returns it. It is not a session and grants nothing else.

The applicant's tasks are those in the initiator lane ("申请人"): with no initiator they have no
candidates, so nobody with an account can take them, and only the tracking-code holder completes
them (through `instances.complete_for_applicant`).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.starts import begin

from . import audit, performers
from . import instances as units
from .errors import Conflict, Invalid, NotFound
from .models import Department, InstanceStep, OpenTask, ProcessInstance, User
from .workflows import process_for, script_engine
from .workspace_models import ApplicationTracking

PROCESS_KEY = "account_application"
DEPARTMENT_FIELD = "department"
CODE_BYTES = 24  # 192 bits: guessing is hopeless, so a fast hash is enough (like auth tokens)
MAX_CODE_LENGTH = 64


@dataclass
class FirstForm:
    """The form of the process's first task, as the public page shows it before anything starts."""
    form: str | None
    ui_form: str | None
    instructions: str
    instructions_en: str = ""


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def departments(s: Session) -> list[Department]:
    """Departments an application can go to: those with a head to review it."""
    return list(s.scalars(select(Department).where(Department.head_id.is_not(None)).order_by(Department.code)))


def first_form(s: Session) -> FirstForm:
    """Which form the applicant fills first: the engine runs the latest diagram in memory up to its
    first user task (no database row, no service call: none is in reach before that task)."""
    definition = units.latest_definition(s, PROCESS_KEY)
    instance = begin(process_for(s, definition.deployment_id, PROCESS_KEY), script_engine())
    tasks = instance.user_tasks()
    if not tasks:
        raise Conflict(_("Account applications cannot be made here at the moment."))
    return FirstForm(tasks[0].form, tasks[0].ui_form, tasks[0].instructions, tasks[0].instructions_en)


def applicant_task(s: Session, instance_id: int) -> OpenTask | None:
    """The open task that waits for the applicant, if any."""
    for task in s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id).order_by(OpenTask.created_at)):
        if not task.candidates and performers.spec_for(task.lane, {}) == "initiator":
            return task
    return None


def check_department(s: Session, code: str | None) -> Department:
    department = s.scalar(select(Department).where(Department.code == (code or ""), Department.head_id.is_not(None)))
    if department is None:
        raise Invalid(_("Choose your department."), [{"field": DEPARTMENT_FIELD, "message": _("Choose your department.")}])
    return department


def submit(s: Session, data: dict) -> tuple[str, ProcessInstance]:
    """Start an application with the newcomer's form; the raw tracking code is returned once."""
    department = check_department(s, data.get(DEPARTMENT_FIELD))
    row = units.start(s, None, PROCESS_KEY).instance
    row.department_id = department.id  # the department's administrators see it, as if started there
    task = applicant_task(s, row.id)
    if task is None:
        raise Conflict(_("Account applications cannot be made here at the moment."))
    units.complete_for_applicant(s, task.id, data)
    code = secrets.token_urlsafe(CODE_BYTES)
    s.add(ApplicationTracking(instance_id=row.id, code_hash=hash_code(code)))
    audit.record(s, "application_submitted", "process_instance", row.id,
                 detail={"department": department.code, "public": True})
    return code, row


def find(s: Session, code: str) -> ProcessInstance:
    """The application a tracking code opens; any other code finds nothing."""
    tracking = None
    if code and len(code) <= MAX_CODE_LENGTH:
        tracking = s.scalar(select(ApplicationTracking).where(ApplicationTracking.code_hash == hash_code(code)))
    if tracking is None:
        raise NotFound(_("No application has this tracking code."))
    return s.get(ProcessInstance, tracking.instance_id)


def amend(s: Session, code: str, data: dict) -> ProcessInstance:
    """The applicant completes their open task (amend and resubmit, or withdraw)."""
    row = find(s, code)
    task = applicant_task(s, row.id)
    if task is None:
        raise Conflict(_("Nothing is waiting for you on this application."))
    if DEPARTMENT_FIELD in data:
        check_department(s, data[DEPARTMENT_FIELD])
    units.complete_for_applicant(s, task.id, data)
    return row


def created_account(s: Session, row: ProcessInstance) -> User | None:
    """The account this application created, once the process has finished with one: the login
    name last filled in, taken by an account made after the application started."""
    if row.state != "completed":
        return None
    filled = s.scalars(select(InstanceStep.data).where(
        InstanceStep.instance_id == row.id, InstanceStep.decision.is_(None)).order_by(InstanceStep.id.desc()))
    username = next((d["username"] for d in filled if isinstance(d, dict) and d.get("username")), None)
    if not isinstance(username, str):
        return None
    user = s.scalar(select(User).where(User.username == username))
    return user if user is not None and user.created_at >= row.started_at else None
