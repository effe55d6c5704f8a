"""Services of permission_review.bpmn: the periodic permission review (R-SEC-7, R-ACC-3).

`collect_grants` lists every grant (a role above `user`, a functional-group membership) of every
active user with the facts that decide its reviewer; the decision is the table
process_models/grant_reviewer.dmn's (as shipped: a department administrator reviews the groups of
their department's other users that they could grant themselves; everything else — roles, groups
beyond a department administrator's reach, the administrators' own grants, departments without an
administrator — is the platform management department's). `apply_permission_review` carries out the revocations.
Office groups (dept_head follows Department.head_id) are not grants and are not reviewed.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit, policy
from ..authority import CHECKS_ONLY, PERMISSIONS, READS, Authority
from ..models import AuthToken, Department, Group, ProcessInstance, User, utcnow
from ..services import ServiceFailure, current_unit, service

NOT_REVIEWED = frozenset({"dept_head"})
ROLE_NAMES = {"dept_admin": "部门管理员", "system_admin": "系统管理员"}
DEPARTMENT_REVIEWABLE = frozenset(policy.GRANTABLE_GROUPS[policy.DEPT_ADMIN])


@service("check_permission_review_start", authority=CHECKS_ONLY)
def check_permission_review_start(params: dict, context: dict) -> dict:
    """'timer' when the platform's quarterly timer started it, 'manual' when someone the policy
    lets `start` a permission review did, 'refused' for anybody else."""
    unit = current_unit.get()
    s = unit.session
    row = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    if row is None or row.started_by is None:
        return {"status": "timer", "problem": ""}
    user = s.get(User, row.started_by)
    if user is not None and user.active and policy.allows(user, "start", "permission_review"):
        return {"status": "manual", "problem": ""}
    return {"status": "refused", "problem": "只有平台管理部门成员或系统管理员可以发起权限复核。"}


def _fact(user: User, department: Department, kind: str, code: str, label: str, administered: bool,
          may_grant: bool) -> dict:
    return {"username": user.username, "full_name": user.full_name, "department": department.code,
            "grant": f"{kind}:{code}", "label": label, "kind": kind, "holder_role": user.role,
            "department_administered": administered, "department_may_grant": may_grant}


@service("collect_grants", authority=Authority(READS, "review", "grant"))
def collect_grants(params: dict, context: dict) -> dict:
    """Every grant of every active user, with the facts the decision table grant_reviewer.dmn
    needs to name its reviewer (the rule itself is the table's, for the platform to change)."""
    s = current_unit.get().session
    departments = {d.id: d for d in s.scalars(select(Department))}
    group_names = dict(s.execute(select(Group.code, Group.name)).all())
    group_departments = dict(s.execute(select(Group.code, Group.department_id)).all())
    users = s.scalars(select(User).where(User.active.is_(True)).order_by(User.username)).all()
    administered = {u.department_id for u in users if u.role == "dept_admin"}
    grants: list[dict] = []
    for user in sorted(users, key=lambda u: (departments[u.department_id].code, u.username)):
        department = departments[user.department_id]
        has_admin = user.department_id in administered
        if user.role != "user":
            grants.append(_fact(user, department, "role", user.role, ROLE_NAMES.get(user.role, user.role),
                                has_admin, False))
        for code in sorted(user.groups - NOT_REVIEWED):
            may_grant = code in DEPARTMENT_REVIEWABLE or group_departments.get(code) == user.department_id
            grants.append(_fact(user, department, "group", code, group_names.get(code, code), has_admin, may_grant))
    return {"grants": grants, "departments": {d.code: d.name for d in departments.values()},
            "as_of": utcnow().isoformat()}


def _revoke(s: Session, target: User, grant: str) -> dict | None:
    """Take one grant away; None when it is already gone. Lowering a role ends every session."""
    kind, _sep, value = grant.partition(":")
    if kind == "role":
        if target.role != value or value == "user":
            return None
        target.role = "user"
        ended = s.execute(update(AuthToken).where(AuthToken.user_id == target.id, AuthToken.revoked_at.is_(None))
                          .values(revoked_at=utcnow())).rowcount
        return {"username": target.username, "grant": grant, "sessions_ended": ended}
    if kind == "group" and value in target.groups:
        target.group_links = [link for link in target.group_links if link.group_code != value]
        return {"username": target.username, "grant": grant, "sessions_ended": 0}
    return None


@service("apply_permission_review", authority=Authority(PERMISSIONS, "review", "grant"))
def apply_permission_review(params: dict, context: dict) -> dict:
    """Apply a reviewer's decisions to the grants that were listed to them — only those: a grant
    added to the submitted form is ignored, and each decision must belong to its listed grant."""
    unit = current_unit.get()
    s = unit.session
    reviewer = s.get(User, unit.actor_id) if unit.actor_id else None
    if reviewer is None:
        raise ServiceFailure("a permission review is applied by the person who completed it")
    listed = params.get("collected") or []
    decisions = params.get("decisions") or []
    if len(decisions) != len(listed):
        raise ServiceFailure(f"{len(listed)} grants were listed but {len(decisions)} decisions came back")
    confirmed, revoked = [], []
    for item, answer in zip(listed, decisions, strict=True):
        answer = answer if isinstance(answer, dict) else {}
        if any(answer.get(k) not in (None, item[k]) for k in ("username", "grant")):
            raise ServiceFailure(f"the decision for {item['username']} {item['grant']} does not match its grant")
        if answer.get("decision") not in ("confirm", "revoke"):
            raise ServiceFailure(f"no decision for {item['username']} {item['grant']}")
        target = s.scalar(select(User).where(User.username == item["username"]))
        if target is None:
            continue
        if not policy.allows(reviewer, "review", "grant", target):
            raise ServiceFailure(f"{reviewer.username} may not review the grants of {target.username}")
        if answer["decision"] == "confirm":
            confirmed.append({"username": target.username, "grant": item["grant"]})
            continue
        change = _revoke(s, target, item["grant"])
        if change is not None:
            s.flush()
            audit.record(s, "grant_revoked", "user", target.id, actor_id=reviewer.id,
                         detail={**change, "review": unit.instance_id, "department": params.get("reviewed_department") or ""})
            revoked.append(change)
    department = params.get("reviewed_department") or ""
    remarks = str(params.get("remarks") or "")[:2000]
    # The platform's reviewers share one task, so one of them may confirm their own grant: the
    # record says so, for the next review and the auditors (R-SEC-10).
    own = [c for c in confirmed if c["username"] == reviewer.username]
    audit.record(s, "grants_reviewed", "process_instance", unit.instance_id, actor_id=reviewer.id, detail={
        "department": department, "confirmed": confirmed, "revoked": revoked, "self_confirmed": own,
        "remarks": remarks})
    return {"department": department, "reviewer": reviewer.username, "confirmed": len(confirmed),
            "revoked": revoked, "remarks": remarks}


# Its record is the review's outcome in the audit log (R-SEC-10): only a review may write it.
@service("close_permission_review", authority=Authority(PERMISSIONS, "review", "grant"))
def close_permission_review(params: dict, context: dict) -> dict:
    """The review's record: who reviewed what and what was revoked (R-SEC-7, R-SEC-10)."""
    unit = current_unit.get()
    outcomes = params.get("outcomes") or {}
    platform = params.get("platform") or {}
    revoked = sum(len(o.get("revoked") or []) for o in [*outcomes.values(), platform])
    confirmed = sum(int(o.get("confirmed") or 0) for o in [*outcomes.values(), platform])
    audit.record(unit.session, "permission_review_completed", "process_instance", unit.instance_id, detail={
        "departments": outcomes, "platform": platform, "confirmed": confirmed, "revoked": revoked})
    return {"confirmed": confirmed, "revoked": revoked, "departments": sorted(outcomes)}
