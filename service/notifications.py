"""The in-app inbox (new task, returned application, overdue, escalation; the initiator's request
approved, rejected or finished) and optional e-mail saying the same.

A notification stores its kind, the step's name and what the reader needs to act without opening
it — the request (process name, number, business key), the applicant, the deadline, who decided —
as JSON in `body`; the sentence is composed when read, in the reader's language. A task's
notifications are marked read when the task leaves the inbox, wherever it was completed.
"""
from __future__ import annotations

import json
import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Update, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.sql.elements import BindParameter

from . import i18n, workflows
from .db import ANSWER_LATER, in_session
from .models import Notification, OpenTask, ProcessInstance, User, UserGroup, utcnow

TASK_KINDS = ("task", "returned", "overdue", "escalation", "unassigned")
# Kinds told to the initiator about their own request (R-WF-2: they follow it without asking).
REQUEST_KINDS = ("approved", "rejected", "finished")

log = logging.getLogger("inkless.notifications")


def recipients(s: Session, task: OpenTask) -> list[User]:
    if task.assignee_id:
        user = s.get(User, task.assignee_id)
        return [user] if user and user.active else []
    user_ids = {c.user_id for c in task.candidates if c.user_id}
    groups = {c.group_code for c in task.candidates if c.group_code}
    if not user_ids and not groups:
        return []
    known = [in_session(s, User, user_id) for user_id in sorted(user_ids)]
    if not groups and all(known):
        # Named people already in this session (typically the initiator, who is often the caller).
        return [user for user in known if user.active]
    # One query for named users and group members; their groups are not needed here, so the
    # User.group_links selectin (a second query) waits until something reads them.
    who = User.id.in_(user_ids)
    if groups:
        who = or_(who, User.id.in_(select(UserGroup.user_id).where(UserGroup.group_code.in_(groups))))
    query = select(User).where(who, User.active.is_(True)).options(lazyload(User.group_links)).order_by(User.id)
    return list(s.scalars(query))


# Core, not the ORM's bulk INSERT: nothing reads the rows back in the unit.
_NOTIFICATIONS = Notification.__table__
_INSERT = insert(_NOTIFICATIONS).inline().execution_options(**{ANSWER_LATER: True})


def notify_task(s: Session, task: OpenTask, kind: str) -> int:
    people = recipients(s, task)
    if people:
        body = json.dumps(context(s, task.instance_id, task.due_at), ensure_ascii=False)
        # One (executemany) INSERT for all recipients; nothing reads the rows back in this unit.
        s.execute(_INSERT, [
            {"user_id": user.id, "kind": kind, "title": task.name, "body": body, "instance_id": task.instance_id,
             "task_id": task.id} for user in people])
        if current_app.config["INKLESS"].smtp_host:
            _mail(people, kind, task.name, body)
    return len(people)


def context(s: Session, instance_id: int, due_at: datetime | None = None, by: str | None = None) -> dict:
    """What a notice about this request says besides its step: read from rows the unit holds."""
    row = s.get(ProcessInstance, instance_id)
    if row is None:
        return {}
    out = {"request": f"{workflows.definition_name(s, row.definition_id)} #{row.id}"}
    if row.business_key:
        out["key"] = row.business_key
    starter = s.get(User, row.started_by) if row.started_by else None
    if starter is not None:
        out["applicant"] = starter.full_name
    if due_at is not None:
        out["due"] = due_at.isoformat()
    if by:
        out["by"] = by
    return out


def tell_initiator(s: Session, row: ProcessInstance, kind: str, step: str, by: str | None = None) -> None:
    """The initiator hears that their request was approved or rejected at a step, or finished."""
    starter = s.get(User, row.started_by) if row.started_by else None
    if starter is None or not starter.active:
        return
    body = json.dumps(context(s, row.id, by=by), ensure_ascii=False)
    s.add(Notification(user_id=starter.id, kind=kind, title=step[:255], body=body, instance_id=row.id))
    if current_app.config["INKLESS"].smtp_host:
        _mail([starter], kind, step, body)


def mark_done(s: Session, task_ids: set[str]) -> None:
    """The tasks left the inbox (completed, here or through the API, or cancelled): their
    notifications are no longer news, for everyone they were sent to."""
    s.execute(_MARK_DONE, {"task_ids": list(task_ids), "read_at": utcnow()})


def done_with(task_ids) -> Update:
    """`mark_done` as a statement, for the tasks `task_ids` (a list bound as "task_ids", or a
    selectable of their ids, such as the RETURNING of their DELETE) and a bound "read_at"."""
    if not isinstance(task_ids, BindParameter):
        task_ids = select(task_ids)
    return (update(_NOTIFICATIONS).where(_NOTIFICATIONS.c.task_id.in_(task_ids), _NOTIFICATIONS.c.read_at.is_(None))
            .values(read_at=bindparam("read_at", type_=_NOTIFICATIONS.c.read_at.type)))


_MARK_DONE = done_with(bindparam("task_ids", expanding=True))


def notify_user(s: Session, user: User, kind: str, title: str, body: str = "") -> None:
    """One notice to one person about their own account (inbox, and mail where configured)."""
    s.add(Notification(user_id=user.id, kind=kind, title=title, body=body))
    if current_app.config["INKLESS"].smtp_host:
        _mail([user], kind, title)


def sentence(kind: str, title: str, body: str = "") -> str:
    if kind == "digest":
        from . import digest

        return digest.sentence(title)
    messages = {
        "task": _("New task: %(title)s", title=title),
        "returned": _("Returned to you for amendment: %(title)s", title=title),
        "overdue": _("Overdue: %(title)s", title=title),
        "escalation": _("Escalated to you: %(title)s", title=title),
        "unassigned": _("Nobody was found to do this step, so it came to you: %(title)s", title=title),
        "approved": _("Your request was approved at “%(title)s”", title=title),
        "rejected": _("Your request was rejected at “%(title)s”", title=title),
        "finished": _("Your request is finished (last step: %(title)s)", title=title),
        "break_glass": _("Break-glass access to document %(title)s", title=title),
        "maintenance": _("Maintenance: something failed — %(title)s", title=title),
        "mfa_reset": _("Your second factor was reset by %(title)s: all your sessions ended; set up a new "
                       "authenticator or security key under “Account and security”.", title=title),
    }
    head = messages.get(kind, title)
    details = _details(details_of(kind, body))
    return f"{head} — {details}" if details else head


def details_of(kind: str, body: str) -> dict:
    """The request, applicant, deadline and decider a task or request notice carries (else {})."""
    if kind not in TASK_KINDS + REQUEST_KINDS or not body.startswith("{"):
        return {}
    try:
        out = json.loads(body)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _details(found: dict) -> str:
    parts = []
    if found.get("request"):
        parts.append(found["request"] + (f" · {found['key']}" if found.get("key") else ""))
    if found.get("applicant"):
        parts.append(_("applicant: %(name)s", name=found["applicant"]))
    if found.get("by"):
        parts.append(_("by %(name)s", name=found["by"]))
    if found.get("due"):
        parts.append(_("due %(when)s", when=i18n.moment_text(found["due"])))
    return _("; ").join(parts)


def _mail(people: list[User], kind: str, title: str, body: str = "") -> None:
    """Best effort: the inbox is the record; a mail server being down must not fail the step."""
    cfg = current_app.config["INKLESS"]
    addresses = [u.email for u in people if u.email]
    if not addresses:
        return
    message = EmailMessage()
    message["From"] = cfg.smtp_sender
    message["To"] = ", ".join(addresses)
    # The mail says what the inbox says: what, which request, whose, by when.
    message["Subject"] = sentence(kind, title, body)
    message.set_content(sentence(kind, title, body) + "\n")
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=5) as smtp:
            smtp.send_message(message)
    except OSError as e:
        log.warning("mail not sent: %s", e)
