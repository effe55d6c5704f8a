"""What a designer picks from in the properties panel: the performers a model's tasks may name.

A model's tasks may go to the people the spec words name through the instance (the initiator, the
head and administrators of the initiator's department), to the groups of the model's own department
and the platform's groups, and to the model's department's active people - the same groups a lane
may name at deploy (service/performers.py refuses a group or user that does not exist). Each comes
as the spec the diagram stores and the name a designer reads.
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Group, User
from .models import ProcessModel


def _people() -> list[dict]:
    return [
        {"spec": "initiator", "kind": "person", "name": _("The initiator")},
        {"spec": "dept_head", "kind": "person", "name": _("The head of the initiator's department")},
        {"spec": "dept_admin", "kind": "person", "name": _("The administrators of the initiator's department")},
    ]


def performers(s: Session, model: ProcessModel) -> list[dict]:
    """People words first, then groups (platform ones first), then the department's people."""
    groups = s.scalars(select(Group).where(or_(Group.department_id.is_(None),
                                               Group.department_id == model.department_id))
                       .order_by(Group.department_id.is_not(None), Group.code)).all()
    users = s.scalars(select(User).where(User.department_id == model.department_id, User.active.is_(True))
                      .order_by(User.full_name, User.username)).all()
    out = _people()
    out += [{"spec": f"group:{g.code}", "kind": "group",
             "name": _("Group %(name)s", name=g.name) if g.department_id is None
             else _("Group %(name)s (%(department)s)", name=g.name, department=model.department.name)}
            for g in groups]
    out += [{"spec": f"user:{u.username}", "kind": "user", "name": f"{u.full_name}（{u.username}）"} for u in users]
    return out
