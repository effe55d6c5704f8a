"""Services of permission_change.bpmn: change a user's role and groups, or deactivate the account
after everything it owns has been handed over (R-ACC-3, R-ACC-4, R-SEC-7).

Every service re-checks the request against the current state of the organisation, because time
passes between the request, the platform's approval and the change. Checks come before any
write: a failing service must not leave half a change behind in the step's transaction.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, handover, notifications, policy
from ..authority import ACCOUNTS, CHECKS_ONLY, DOCUMENTS, PERMISSIONS, READS, Approval, Authority, granted_by
from ..documents.access import clearance
from ..documents.models import level_name
from ..groups import assignable
from ..models import Group, ProcessInstance, User, UserGroup
from ..services import ServiceFailure, current_unit, service

# Roles a request may ask for: system_admin is never granted through a procedure (R-ACC-3, R-SEC-7).
REQUESTABLE_ROLES = ("user", "dept_admin")
# Groups that follow from an office rather than a request: the platform management department's
# membership is set up by the system administrators, dept_head follows Department.head_id. A change
# request neither grants nor removes them.
UNREQUESTABLE_GROUPS = policy.OFFICE_GROUPS
# Every change is carried out after the platform management department's final review (R-ACC-4),
# which also decides what may be granted (R-SEC-7).
PLATFORM_REVIEW = Approval("platform_review", "platform_admin", grants=True)


def _requester(s: Session) -> User | None:
    """The department administrator who started the request (the instance's initiator)."""
    unit = current_unit.get()
    row = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    return s.get(User, row.started_by) if row is not None and row.started_by else None


def _problem(s: Session, requester: User | None, params: dict) -> tuple[str | None, User | None]:
    """Why the request may not go ahead (in Chinese: it is shown to the requester), or None."""
    username = str(params.get("target_username") or "").strip()
    target = s.scalar(select(User).where(User.username == username)) if username else None
    if target is None or requester is None or not policy.allows(requester, "manage", "user", target):
        # One answer for both, so a request does not reveal who exists in other departments.
        return f"用户 {username or '(空)'} 不存在或不属于您管理的部门:只能为本部门的用户申请变更或注销。", None
    if requester.id == target.id:
        return "不能为自己申请权限变更或注销,请由本部门其他管理员或上级办理。", target
    if target.role == "system_admin":
        return "系统管理员账号不能通过本流程变更或注销,请联系平台管理部门。", target
    if not target.active:
        return f"用户 {username} 的账号已注销。", target
    if params.get("change_type") == "change":
        role = params.get("new_role")
        if role not in REQUESTABLE_ROLES:
            return f"不能通过本流程申请角色 {role}(只能申请普通用户或部门管理员)。", target
        groups = set(params.get("groups") or [])
        rows = s.scalars(select(Group).where(Group.code.in_(groups))).all()
        known = {g.code for g in rows if assignable(g, target)}  # another department's group is not theirs
        refused = sorted(groups - known) + sorted(groups & UNREQUESTABLE_GROUPS)
        if refused:
            return f"不能通过本流程授予功能权限:{'、'.join(refused)}。", target
        beyond = policy.may_grant(requester, role, rows)
        if beyond:  # nobody grants more than they hold (R-SEC-7)
            return f"您无权授予:{'、'.join(beyond)}(只能授予您有权管理的角色和功能组)。", target
    elif params.get("change_type") != "deactivate":
        return "请选择变更类型(权限变更或账号注销)。", target
    return None, target


@service("check_permission_change", authority=CHECKS_ONLY)
def check_permission_change(params: dict, context: dict) -> dict:
    """First step after the request: may this department administrator ask this (R-ACC-3)?"""
    s = current_unit.get().session
    problem, target = _problem(s, _requester(s), params)
    summary = None
    if problem is None:  # what the platform's reviewer needs; nothing about users one may not manage
        summary = {"full_name": target.full_name, "role": target.role, "groups": sorted(target.groups),
                   "department": target.department.code}
    return {"ok": problem is None, "problem": problem or "", "target": summary}


@service("apply_permission_change", authority=Authority(PERMISSIONS, "change", "grant", relies_on=(PLATFORM_REVIEW,)))
def apply_permission_change(params: dict, context: dict) -> dict:
    """After the platform's approval: set the role and the requestable groups (R-ACC-4, R-SEC-7)."""
    unit = current_unit.get()
    s = unit.session
    problem, target = _problem(s, _requester(s), dict(params, change_type="change"))
    if problem:
        raise ServiceFailure(f"the change can no longer be applied: {problem}")
    rows = s.scalars(select(Group).where(Group.code.in_(set(params.get("groups") or [])))).all()
    beyond = sorted({b for reviewer in granted_by() for b in policy.may_grant(reviewer, params["new_role"], rows)})
    if beyond:
        raise ServiceFailure(f"the platform's reviewer may not grant {', '.join(beyond)}")
    before = {"role": target.role, "groups": sorted(target.groups), "post": target.post}
    wanted = set(params.get("groups") or [])
    kept = {g for g in target.groups if g in UNREQUESTABLE_GROUPS}
    target.role = params["new_role"]
    target.post = str(params.get("new_post") or "").strip() or target.post
    target.group_links = [link for link in target.group_links if link.group_code in kept | wanted]
    for code in sorted(wanted - target.groups):
        target.group_links.append(UserGroup(user_id=target.id, group_code=code))
    s.flush()
    after = {"role": target.role, "groups": sorted(target.groups), "post": target.post}
    audit.record(s, "permissions_changed", "user", target.id, actor_id=unit.actor_id,
                 detail={"username": target.username, "before": before, "after": after, "instance": unit.instance_id})
    return {"username": target.username, **after}


def _target(s: Session, params: dict) -> User:
    user = s.scalar(select(User).where(User.username == str(params.get("username") or "")))
    if user is None:
        raise ServiceFailure(f"user '{params.get('username')}' does not exist")
    return user


# It lists what another account holds, documents above the caller's clearance included.
@service("handover_inventory", authority=Authority(READS, "hand_over", "document"))
def handover_inventory(params: dict, context: dict) -> dict:
    """List what must be handed over before the account is deactivated (R-ACC-4)."""
    s = current_unit.get().session
    user = _target(s, params)
    tasks, instances = handover.owned(s, user)
    documents = handover.documents(s, user)
    lines = [f"待办任务:{t.name}(流程 {t.process_key} #{t.instance_id})" for t in tasks]
    lines += [f"进行中的流程:{i.process_key} #{i.id}" + (f"({i.business_key})" if i.business_key else "")
              for i in instances]
    lines += [f"文件:{d.title}(#{d.id},{level_name(d.security_level)})" for d in documents]
    return {
        "open_tasks": [{"id": t.id, "instance_id": t.instance_id, "name": t.name} for t in tasks],
        "instances": [{"id": i.id, "process_key": i.process_key, "business_key": i.business_key} for i in instances],
        "documents": [{"id": d.id, "title": d.title} for d in documents],
        "total": len(tasks) + len(instances) + len(documents),
        "summary": "\n".join(lines),
    }


@service("apply_handover", authority=Authority(DOCUMENTS, "hand_over", "document", relies_on=(PLATFORM_REVIEW,)))
def apply_handover(params: dict, context: dict) -> dict:
    """Give the listed items to the successor. Only what the department administrator saw in the
    inventory is handed over; anything the account acquired since shows up in the next round."""
    unit = current_unit.get()
    s = unit.session
    requested, user = _problem(s, _requester(s), {"target_username": params.get("username"), "change_type": "deactivate"})
    if requested:
        raise ServiceFailure(f"the hand-over can no longer be applied: {requested}")
    successor_name = str(params.get("successor") or "").strip()
    successor = s.scalar(select(User).where(User.username == successor_name))
    problem = None
    if successor is None or not successor.active:
        problem = f"接收人 {successor_name} 不存在或已注销。"
    elif successor.id == user.id:
        problem = "接收人不能是待注销的用户本人。"
    elif successor.department_id != user.department_id:
        problem = f"接收人 {successor_name} 不是本部门用户,只能交接给本部门的在岗人员。"
    document_ids = {int(d["id"]) for d in params.get("documents") or [] if isinstance(d, dict)}
    documents = [d for d in handover.documents(s, user) if d.id in document_ids]
    if not problem and successor is not None:
        too_high = [d.title for d in documents if d.security_level > clearance(s, successor)]
        if too_high:
            problem = f"接收人 {successor_name} 的密级权限低于文件密级:{'、'.join(too_high)}。请选择其他接收人或先将文件归档。"
    if problem:
        return {"tasks": 0, "instances": 0, "documents": 0, "problem": problem}
    task_ids = {str(t["id"]) for t in params.get("open_tasks") or []}
    instance_ids = {int(i["id"]) for i in params.get("instances") or []}
    tasks, instances = handover.owned(s, user)
    moved_tasks = [t for t in tasks if t.id in task_ids]
    for task in moved_tasks:
        if task.assignee_id == user.id:
            task.assignee_id = successor.id
        for candidate in task.candidates:
            if candidate.user_id == user.id:
                candidate.user_id = successor.id
    moved_instances = [i for i in instances if i.id in instance_ids]
    for row in moved_instances:
        row.started_by = successor.id
    for document in documents:
        document.owner_id = successor.id
    s.flush()
    for task in moved_tasks:
        notifications.notify_task(s, task, "task")  # the successor finds them in the inbox
    audit.record(s, "account_handed_over", "user", user.id, actor_id=unit.actor_id, detail={
        "username": user.username, "successor": successor.username, "tasks": [t.id for t in moved_tasks],
        "instances": [i.id for i in moved_instances], "documents": [d.id for d in documents],
        "instance": unit.instance_id})
    return {"tasks": len(moved_tasks), "instances": len(moved_instances), "documents": len(documents), "problem": ""}


@service("deactivate_user", authority=Authority(ACCOUNTS, "deactivate", "user", relies_on=(PLATFORM_REVIEW,)))
def deactivate_user(params: dict, context: dict) -> dict:
    """Deactivate the account and end its sessions at once, or refuse while it still owns
    anything (R-ACC-4): the diagram then goes back to the hand-over."""
    unit = current_unit.get()
    s = unit.session
    problem, user = _problem(s, _requester(s), {"target_username": params.get("username"),
                                               "change_type": "deactivate"})
    if problem:
        raise ServiceFailure(f"the account can no longer be deactivated: {problem}")
    held = handover.holdings(s, user)
    if held:
        counts = held.counts()
        return {"deactivated": False, "remaining": counts,
                "reason": f"仍有 {counts['open_tasks']} 项待办任务、{counts['instances']} 个进行中的流程、"
                          f"{counts['documents']} 份文件未交接,平台拒绝注销。"}
    handover.deactivate(s, user, unit.actor_id, {"instance": unit.instance_id})
    return {"deactivated": True, "remaining": {"open_tasks": 0, "instances": 0, "documents": 0}, "reason": ""}
