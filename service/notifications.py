"""The in-app inbox (new task, returned application, overdue, escalation) and optional e-mail.

A notification stores its kind and the task's name; the sentence is composed when read, in the
reader's language.
"""
from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session, lazyload

from .db import in_session
from .models import Notification, OpenTask, User, UserGroup, utcnow

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


def notify_task(s: Session, task: OpenTask, kind: str) -> int:
    people = recipients(s, task)
    if people:
        # One (executemany) INSERT for all recipients; nothing reads the rows back in this unit.
        s.execute(insert(Notification), [
            {"user_id": user.id, "kind": kind, "title": task.name, "instance_id": task.instance_id,
             "task_id": task.id} for user in people])
    if people and current_app.config["INKLESS"].smtp_host:
        _mail(people, kind, task.name)
    return len(people)


def settle_tasks_of(s: Session, instance_id: int) -> None:
    """The notices about an ended instance's tasks are read: none of them is left to do (a withdrawn request)."""
    s.execute(update(Notification).where(Notification.instance_id == instance_id, Notification.task_id.is_not(None),
                                         Notification.read_at.is_(None))
              .values(read_at=utcnow()).execution_options(synchronize_session=False))


def notify_user(s: Session, user: User, kind: str, title: str, body: str = "") -> None:
    """One notice to one person about their own account (inbox, and mail where configured)."""
    s.add(Notification(user_id=user.id, kind=kind, title=title, body=body))
    if current_app.config["INKLESS"].smtp_host:
        _mail([user], kind, title)


def sentence(kind: str, title: str) -> str:
    if kind == "digest":
        from . import digest

        return digest.sentence(title)
    messages = {
        "task": _("New task: %(title)s", title=title),
        "returned": _("Returned to you for amendment: %(title)s", title=title),
        "overdue": _("Overdue: %(title)s", title=title),
        "escalation": _("Escalated to you: %(title)s", title=title),
        "unassigned": _("Nobody was found to do this step, so it came to you: %(title)s", title=title),
        "break_glass": _("Break-glass access to document %(title)s", title=title),
        "maintenance": _("Maintenance: something failed — %(title)s", title=title),
        "mfa_reset": _("Your second factor was reset by %(title)s: all your sessions ended; set up a new "
                       "authenticator or security key under “Account and security”.", title=title),
    }
    return messages.get(kind, title)


def _mail(people: list[User], kind: str, title: str) -> None:
    """Best effort: the inbox is the record; a mail server being down must not fail the step."""
    cfg = current_app.config["INKLESS"]
    addresses = [u.email for u in people if u.email]
    if not addresses:
        return
    message = EmailMessage()
    message["From"] = cfg.smtp_sender
    message["To"] = ", ".join(addresses)
    message["Subject"] = sentence(kind, title)
    message.set_content(sentence(kind, title))
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=5) as smtp:
            smtp.send_message(message)
    except OSError as e:
        log.warning("mail not sent: %s", e)
