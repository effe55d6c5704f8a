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
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Notification, OpenTask, User, UserGroup

log = logging.getLogger("inkless.notifications")


def recipients(s: Session, task: OpenTask) -> list[User]:
    if task.assignee_id:
        user = s.get(User, task.assignee_id)
        return [user] if user and user.active else []
    user_ids = {c.user_id for c in task.candidates if c.user_id}
    groups = {c.group_code for c in task.candidates if c.group_code}
    if groups:
        user_ids |= set(s.scalars(select(UserGroup.user_id).where(UserGroup.group_code.in_(groups))))
    if not user_ids:
        return []
    return list(s.scalars(select(User).where(User.id.in_(user_ids), User.active.is_(True))))


def notify_task(s: Session, task: OpenTask, kind: str) -> int:
    people = recipients(s, task)
    for user in people:
        s.add(Notification(user_id=user.id, kind=kind, title=task.name, instance_id=task.instance_id, task_id=task.id))
    if people and current_app.config["INKLESS"].smtp_host:
        _mail(people, kind, task.name)
    return len(people)


def sentence(kind: str, title: str) -> str:
    if kind == "digest":
        from . import digest

        return digest.sentence(title)
    messages = {
        "task": _("New task: %(title)s", title=title),
        "returned": _("Returned to you for amendment: %(title)s", title=title),
        "overdue": _("Overdue: %(title)s", title=title),
        "escalation": _("Escalated to you: %(title)s", title=title),
        "break_glass": _("Break-glass access to document %(title)s", title=title),
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
