"""Administration of the library: clearances (mandatory access control), the business-type
taxonomy, and master-key rotation. Every change is audited (R-SEC-1, R-SEC-8)."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, policy
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import User, utcnow
from . import crypto
from .models import DEFAULT_CLEARANCE, LEVELS, BusinessType, DataKey, UserClearance, level_name
from .objects import keyring


def require_system_admin(user: User) -> None:
    policy.authorize(user, "maintain", "library", message=_("Only system administrators may do this."))


def require_taxonomy_admin(user: User) -> None:
    policy.authorize(user, "edit", "business_type",
                     message=_("Only the platform management department may edit business types."))


def clearances(s: Session, admin: User) -> list[tuple[User, int]]:
    policy.authorize(admin, "set", "clearance", message=_("Only system administrators may do this."))
    granted = dict(s.execute(select(UserClearance.user_id, UserClearance.level)).all())
    users = s.scalars(select(User).where(User.active.is_(True)).order_by(User.username)).all()
    return [(u, granted.get(u.id, DEFAULT_CLEARANCE)) for u in users]


def set_clearance(s: Session, admin: User, username: str, level_label: str) -> tuple[User, int]:
    """Grant a clearance. Nobody sets their own: a system administrator does not reach 核心机密
    (or any level) by granting it to themselves."""
    policy.authorize(admin, "set", "clearance", message=_("Only system administrators may do this."))
    if level_label not in LEVELS:
        raise Invalid(_("Invalid field: %(fields)s", fields="level"),
                      [{"field": "level", "message": "/".join(LEVELS)}])
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(_("User %(name)s not found.", name=username))
    if user.id == admin.id:
        raise Forbidden(_("Nobody may change their own clearance."))
    row = s.get(UserClearance, user.id)
    before = row.level if row is not None else DEFAULT_CLEARANCE
    level = LEVELS.index(level_label)
    if row is None:
        row = UserClearance(user_id=user.id)
        s.add(row)
    row.level = level
    row.granted_by = admin.id
    row.granted_at = utcnow()
    audit.record(s, "clearance_set", "user", user.id, actor_id=admin.id,
                 detail={"username": username, "from": level_name(before), "to": level_label})
    return user, level


def business_types(s: Session) -> list[BusinessType]:
    return s.scalars(select(BusinessType).order_by(BusinessType.code)).all()


def descendants(s: Session, code: str) -> list[int]:
    """The ids of a business type and everything below it (browsing a branch of the tree)."""
    rows = s.execute(select(BusinessType.id, BusinessType.code, BusinessType.parent_id)).all()
    root = next((r.id for r in rows if r.code == code), None)
    if root is None:
        return []
    found, frontier = {root}, [root]
    while frontier:
        frontier = [r.id for r in rows if r.parent_id in frontier and r.id not in found]
        found.update(frontier)
    return sorted(found)


def _parent(s: Session, code: str | None) -> BusinessType | None:
    if not code:
        return None
    parent = s.scalar(select(BusinessType).where(BusinessType.code == code))
    if parent is None:
        raise Invalid(_("Invalid field: %(fields)s", fields="parent"),
                      [{"field": "parent", "message": _("unknown business type")}])
    return parent


def create_business_type(s: Session, user: User, code: str, name: str, parent: str | None) -> BusinessType:
    require_taxonomy_admin(user)
    if s.scalar(select(BusinessType.id).where(BusinessType.code == code)) is not None:
        raise Conflict(_("Business type %(code)s already exists.", code=code))
    parent_row = _parent(s, parent)
    row = BusinessType(code=code, name=name, parent_id=parent_row.id if parent_row else None)
    s.add(row)
    s.flush()
    audit.record(s, "business_type_created", "business_type", row.id, actor_id=user.id,
                 detail={"code": code, "name": name, "parent": parent})
    return row


def update_business_type(s: Session, user: User, code: str, name: str | None, parent: str | None,
                         move: bool) -> BusinessType:
    require_taxonomy_admin(user)
    row = s.scalar(select(BusinessType).where(BusinessType.code == code))
    if row is None:
        raise NotFound(_("Business type %(code)s not found.", code=code))
    before = {"name": row.name, "parent_id": row.parent_id}
    if name:
        row.name = name
    if move:
        parent_row = _parent(s, parent)
        if parent_row is not None and parent_row.id in descendants(s, code):
            raise Invalid(_("A business type cannot be moved below itself."),
                          [{"field": "parent", "message": _("cycle")}])
        row.parent_id = parent_row.id if parent_row else None
    audit.record(s, "business_type_updated", "business_type", row.id, actor_id=user.id,
                 detail={"code": code, "before": before, "after": {"name": row.name, "parent_id": row.parent_id}})
    return row


def rotate_master_key(s: Session, admin: User) -> dict:
    """Re-wrap every data key under a new master key; content is not re-encrypted. With key
    files a new key is generated; with INKLESS_MASTER_KEY the first key listed is the new one."""
    require_system_admin(admin)
    ring = keyring()
    new_id = ring.new_key_file() if ring.from_files else ring.current()[0]
    new_key = ring.get(new_id)
    rewrapped = 0
    for row in s.scalars(select(DataKey).where(DataKey.master_key_id != new_id)).all():
        data_key = crypto.unwrap_key(ring.get(row.master_key_id), row.algorithm, row.wrapped_key)
        row.wrapped_key = crypto.wrap_key(new_key, row.algorithm, data_key)
        row.master_key_id = new_id
        row.rewrapped_at = utcnow()
        rewrapped += 1
    audit.record(s, "master_key_rotated", "master_key", new_id, actor_id=admin.id, detail={"rewrapped": rewrapped})
    s.flush()
    s.commit()
    ring.make_current(new_id)
    return {"key_id": new_id, "rewrapped": rewrapped}
