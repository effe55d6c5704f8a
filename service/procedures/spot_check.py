"""Services of spot_check.bpmn: the supervision group's unscheduled spot checks (R-SUP-1, 不定期抽查).

`sample_records` draws a random sample of one department's accounts, documents and process
instances from what the sampler may inspect (the read-only views of service/inspection.py, each
read audited there as `inspection_read`). The seed is drawn by the platform, not chosen by the
supervisor (who could otherwise try seeds until a sample avoids a known problem), and kept with the
sample in the process data and in the audit event `spot_check_sampled`: `draw` with the same seed
over the same records gives the same sample, so anybody checking the check can redraw it.

Documents are sampled by their metadata only: content is never read here, and a title is shown only
for a document within the sampler's clearance and no higher than everybody's default clearance
(内部) — the sample is read by the whole supervision group and by whoever may read the request.

`record_spot_check` pairs the supervisor's conclusions (合格 / 不合格 with a finding) with the sample
the platform drew — the audit event, not the process data a submission could change — writes the
spot check's record `spot_check_recorded`, and turns the findings into the request the diagram
sends as message `rectification_required` (the path the quarterly assessment and audit findings
take), which starts issue_rectification for the department.
"""
from __future__ import annotations

import random
import secrets
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import clock

from .. import audit, inspection, policy
from ..authority import READS, RECORDS, Authority, Refused
from ..localtime import PLATFORM_TZ, end_of_day_after
from ..models import AuditEvent, Department, OpenTask, ProcessDefinition, ProcessInstance, User, utcnow
from ..services import ServiceFailure, current_unit, service
from .departments import responsible_department_problem

# What may be sampled, the inspection resource each is read through, and its name in findings.
KINDS = {"account": "user", "document": "document", "process": "process_instance"}
KIND_NAMES = {"account": "账号", "document": "文件", "process": "流程实例"}
# The issue_rectification category of findings of one kind (mixed kinds: "other").
CATEGORIES = {"account": "account", "document": "file", "process": "process"}
MIN_SIZE, MAX_SIZE = 1, 20
RESULTS = ("pass", "fail")
SEVERITIES = ("low", "medium", "high")
RECTIFICATION_DAYS = 14  # the deadline of the rectification a spot check's findings start
SAMPLED, RECORDED = "spot_check_sampled", "spot_check_recorded"
ROLE_NAMES = {"user": "普通用户", "dept_admin": "部门管理员", "system_admin": "系统管理员"}
STATE_NAMES = {"running": "进行中", "completed": "已完成", "cancelled": "已撤销", "error": "出错"}
DOCUMENT_STATES = {"active": "在用", "archived": "已归档", "deleted": "已删除"}


def _when(value) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(PLATFORM_TZ).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _day(value) -> str:
    return value.astimezone(PLATFORM_TZ).strftime("%Y-%m-%d") if isinstance(value, datetime) else "—"


# -- the pool: what the sampler may inspect in the department, in a fixed order ---------------------

def _accounts(s: Session, user: User, department: Department) -> list[dict]:
    out = []
    for a in inspection.accounts(s, user, department=department.code):
        groups = "、".join(a.group_names) or "无"
        state = ("启用" if a.active else "停用") + (",长期未登录" if a.dormant else "")
        out.append({
            "kind": "account", "ref": f"user:{a.username}", "label": f"{a.username}({a.full_name})",
            "summary": f"{a.department_name} · {ROLE_NAMES.get(a.role, a.role)} · 功能组 {groups} · {state}"
                       f" · 最近登录 {_day(a.last_sign_in) if a.last_sign_in else '从未'}",
            "facts": {"username": a.username, "full_name": a.full_name, "department": a.department, "role": a.role,
                      "groups": a.groups, "active": a.active, "dormant": a.dormant,
                      "created_at": _when(a.created_at), "last_sign_in": _when(a.last_sign_in)}})
    return sorted(out, key=lambda item: item["ref"])


def _documents(s: Session, user: User, department: Department) -> list[dict]:
    from ..documents.models import DEFAULT_CLEARANCE, LEVELS

    out = []
    for d in inspection.documents(s, user, department=department.code):
        shown = not d["withheld"] and LEVELS.index(d["security_level"]) <= DEFAULT_CLEARANCE
        title = d["title"] if shown else None
        out.append({
            "kind": "document", "ref": f"document:{d['id']}",
            "label": f"#{d['id']} {title}" if title else f"#{d['id']}(标题不予显示)",
            "summary": f"密级 {d['security_level']} · {DOCUMENT_STATES.get(d['state'], d['state'])}"
                       f" · 类别 {d['business_type'] or '未分类'} · 第 {d['current_version']} 版"
                       f" · 登记于 {_day(d['created_at'])}",
            "facts": {"id": d["id"], "title": title, "title_withheld": title is None, "department": d["department"],
                      "owner": d["owner"], "security_level": d["security_level"], "business_type": d["business_type"],
                      "state": d["state"], "current_version": d["current_version"],
                      **{k: _when(d[k]) for k in ("document_date", "created_at", "updated_at", "archived_at",
                                                  "published_at", "deleted_at")},
                      "audience": d["audience"]}})
    return sorted(out, key=lambda item: int(item["facts"]["id"]))


def _processes(s: Session, user: User, department: Department) -> list[dict]:
    """The department's process instances (no data: what they carry stays behind their own rules)."""
    inspection.authorize(user, "process_instance")
    names = dict(s.execute(select(ProcessDefinition.key, ProcessDefinition.name)
                           .order_by(ProcessDefinition.version)).all())
    rows = s.execute(select(ProcessInstance, User.username).outerjoin(User, User.id == ProcessInstance.started_by)
                     .where(ProcessInstance.department_id == department.id,
                            policy.scope_filter(user, "inspect", "process_instance"))
                     .order_by(ProcessInstance.id)).all()
    late = dict(s.execute(select(OpenTask.instance_id, func.count()).join(
        ProcessInstance, ProcessInstance.id == OpenTask.instance_id).where(
        ProcessInstance.department_id == department.id, OpenTask.due_at < utcnow()).group_by(OpenTask.instance_id)).all())
    audit.record(s, "inspection_read", "inspection", "process_instances", actor_id=user.id,
                 detail={"view": "process_instances", "department": department.code, "count": len(rows)})
    out = []
    for row, starter in rows:
        name = names.get(row.process_key) or row.process_key
        out.append({
            "kind": "process", "ref": f"process_instance:{row.id}", "label": f"#{row.id} {name}",
            "summary": f"第 {row.version} 版 · {STATE_NAMES.get(row.state, row.state)} · 发起于 {_day(row.started_at)}"
                       f" · 逾期步骤 {late.get(row.id, 0)} 个",
            "facts": {"id": row.id, "process_key": row.process_key, "process_name": name, "version": row.version,
                      "state": row.state, "business_key": row.business_key, "started_by": starter,
                      "started_at": _when(row.started_at), "ended_at": _when(row.ended_at),
                      "overdue_steps": late.get(row.id, 0)}})
    return out


POOLS = {"account": _accounts, "document": _documents, "process": _processes}


def pick(pool: list[dict], size: int, seed: int) -> list[dict]:
    """`size` items of `pool` drawn with `random.Random(seed)`, in the pool's order."""
    chosen = sorted(random.Random(seed).sample(range(len(pool)), min(size, len(pool))))
    return [pool[i] for i in chosen]


def draw(s: Session, user: User, department: Department, kinds: list[str], size: int, seed: int) -> tuple[list[dict], int]:
    """The sample (and the size of the pool it came from) of `kinds` in `department`, as `user`
    may inspect them: the same seed over the same records draws the same sample."""
    pool = [item for kind in KINDS if kind in kinds for item in POOLS[kind](s, user, department)]
    return pick(pool, size, seed), len(pool)


def _scope_problem(s: Session, user: User | None, params: dict) -> tuple[str | None, Department | None, list[str], int]:
    kinds = params.get("kinds")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    kinds = [k for k in KINDS if isinstance(kinds, list) and k in kinds]
    size = params.get("sample_size")
    code = params.get("department")
    department = s.scalar(select(Department).where(Department.code == code)) if isinstance(code, str) else None
    if user is None or not all(policy.widest(user, "inspect", r) for r in KINDS.values()):
        return "只有监督小组成员可以抽取样本。", None, kinds, 0
    if department is None:
        return f"部门 {code or '(空)'} 不存在,请选择要抽查的部门。", None, kinds, 0
    if not kinds:
        return "请选择抽查的内容:账号、文件或流程实例。", department, kinds, 0
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        return f"抽样数量须为 {MIN_SIZE} 到 {MAX_SIZE} 之间的整数。", department, kinds, 0
    if not all(policy.covers_department(user, "inspect", KINDS[k], department.id) for k in kinds):
        return f"您无权抽查{department.name}的这些记录。", department, kinds, size
    problem, _found = responsible_department_problem(s, department.code)
    if problem:
        return problem + "抽查发现的问题须由该部门管理员限期整改。", department, kinds, size
    return None, department, kinds, size


@service("sample_records", authority=Authority(READS, "inspect", "department"))
def sample_records(params: dict, context: dict) -> dict:
    """R-SUP-1 (不定期抽查): draw `sample_size` (1–20) of the `kinds` ("account", "document",
    "process") of `department` that the person completing the step may inspect, with a seed the
    platform draws. {"status": "ok" | "invalid", "problem", "department", "department_name",
    "kinds", "seed", "pool", "items": [{kind, ref, label, summary, facts}], "checks"} — `checks`
    are the rows of the next form, one per item, for the conclusions.

    It reads across departments on the sampler's own `inspect` rights (each read audited by
    service/inspection.py); a diagram deployed by someone without `inspect department` in every
    department may not call it (the four `inspect` rights are granted together)."""
    unit = current_unit.get()
    s = unit.session
    user = s.get(User, unit.actor_id) if unit.actor_id else None
    problem, department, kinds, size = _scope_problem(s, user, params)
    if problem:
        return {"status": "invalid", "problem": problem, "department": params.get("department"),
                "department_name": department.name if department else "", "kinds": kinds, "seed": None,
                "pool": 0, "items": [], "checks": []}
    seed = secrets.randbelow(2**31)
    items, pool = draw(s, user, department, kinds, size, seed)
    if not items:
        return {"status": "invalid", "problem": f"{department.name}没有可抽查的{'、'.join(KIND_NAMES[k] for k in kinds)}。",
                "department": department.code, "department_name": department.name, "kinds": kinds, "seed": seed,
                "pool": 0, "items": [], "checks": []}
    audit.record(s, SAMPLED, "process_instance", unit.instance_id, actor_id=user.id, detail={
        "department": department.code, "kinds": kinds, "sample_size": size, "seed": seed, "pool": pool,
        "items": [{k: i[k] for k in ("kind", "ref", "label", "summary")} for i in items]})
    return {"status": "ok", "problem": "", "department": department.code, "department_name": department.name,
            "kinds": kinds, "seed": seed, "pool": pool, "items": items,
            "checks": [{k: i[k] for k in ("kind", "ref", "label", "summary")} for i in items]}


# -- the conclusions --------------------------------------------------------------------------------

def _sampled(s: Session, instance_id: int | None) -> dict:
    """The latest sample the platform drew for this instance (its audit event)."""
    event = s.scalars(select(AuditEvent).where(
        AuditEvent.action == SAMPLED, AuditEvent.object_type == "process_instance",
        AuditEvent.object_id == str(instance_id)).order_by(AuditEvent.id.desc()).limit(1)).first() \
        if instance_id else None
    if event is None:
        raise ServiceFailure("record_spot_check: no sample was drawn for this spot check")
    return event.detail


def _aligned(items: list[dict], answers: list) -> list[dict | None]:
    """Each sampled item's answer: by `ref` when the answers carry them, else by position."""
    answers = [a if isinstance(a, dict) else {} for a in answers]
    refs = {i["ref"] for i in items}
    unknown = sorted({str(a["ref"]) for a in answers if a.get("ref") and a["ref"] not in refs})
    if unknown:
        raise ServiceFailure(f"record_spot_check: {', '.join(unknown)} were not in the sample")
    if answers and all(a.get("ref") for a in answers):
        by_ref = {a["ref"]: a for a in answers}
        return [by_ref.get(i["ref"]) for i in items]
    if len(answers) == len(items):
        mismatched = [i["ref"] for i, a in zip(items, answers, strict=True) if a.get("ref") not in (None, "", i["ref"])]
        if mismatched:
            raise ServiceFailure(f"record_spot_check: the conclusions do not match the sample ({', '.join(mismatched)})")
        return list(answers)
    return [None] * len(items)


@service("record_spot_check", authority=Authority(RECORDS, "record", "finding"))
def record_spot_check(params: dict, context: dict) -> dict:
    """R-SUP-1: the spot check's record. `checks` are the conclusions, one per sampled item
    (`result` "pass" | "fail", a `finding` for a fail); the items are the sample the platform drew
    for this instance. {"status": "ok" | "incomplete", "problem", "checks" (items with their
    conclusions), "findings", "passed", "failed", "rectification_request"} — when complete it writes
    `spot_check_recorded`, and with findings `rectification_request` is the payload of message
    rectification_required (department, problem, severity from the step's `severity`, default
    较重, a deadline 14 days on, category, evidence)."""
    unit = current_unit.get()
    s = unit.session
    actor = s.get(User, unit.actor_id) if unit.actor_id else None
    if actor is None or not policy.allows(actor, "record", "finding"):
        raise Refused("Service 'record_spot_check' refused: only a member of the supervision group or an inspector "
                      "records the findings of a spot check.")
    sample = _sampled(s, unit.instance_id)
    items = sample.get("items") or []
    answers = params.get("checks")
    rows, missing = [], []
    for item, answer in zip(items, _aligned(items, answers if isinstance(answers, list) else []), strict=True):
        answer = answer or {}
        result = answer.get("result")
        finding = str(answer.get("finding") or "").strip()[:2000]
        row = {k: item[k] for k in ("kind", "ref", "label", "summary") if k in item}
        if result in RESULTS:
            row["result"] = result
        if finding:
            row["finding"] = finding
        rows.append(row)
        if result not in RESULTS or (result == "fail" and len(finding) < 2):
            missing.append(item["label"])
    if missing:
        return {"status": "incomplete", "problem": f"请逐项填写结论,不合格的写明发现的问题:{'、'.join(missing)}。",
                "checks": rows, "findings": [], "passed": 0, "failed": 0, "rectification_request": None}
    findings = [r for r in rows if r["result"] == "fail"]
    department = s.scalar(select(Department).where(Department.code == sample["department"]))
    name = department.name if department else sample["department"]
    severity = context.get("severity") if context.get("severity") in SEVERITIES else "medium"
    request = None
    if findings:
        lines = "\n".join(f"{n}. {KIND_NAMES[f['kind']]} {f['label']}:{f['finding']}" for n, f in enumerate(findings, 1))
        kinds = {f["kind"] for f in findings}
        request = {
            "department": sample["department"],
            "problem": (f"不定期抽查发现{name}有 {len(findings)} 项不合格(抽查 {len(rows)} 项):\n{lines}")[:4000],
            "severity": severity, "deadline": end_of_day_after(clock.now(), RECTIFICATION_DAYS),
            "category": CATEGORIES[kinds.pop()] if len(kinds) == 1 else "other",
            "evidence": f"不定期抽查(流程 #{unit.instance_id},随机种子 {sample['seed']}):"
                        + "、".join(f["ref"] for f in findings),
            "source": "spot_check", "spot_check_instance": unit.instance_id}
    remarks = str(context.get("remarks") or "").strip()[:2000]
    audit.record(s, RECORDED, "process_instance", unit.instance_id, actor_id=actor.id, detail={
        "department": sample["department"], "kinds": sample.get("kinds"), "seed": sample["seed"],
        "sampled": [r["ref"] for r in rows], "passed": len(rows) - len(findings),
        "failed": [{"ref": f["ref"], "finding": f["finding"]} for f in findings],
        "severity": severity if findings else None, "remarks": remarks})
    return {"status": "ok", "problem": "", "checks": rows, "findings": findings, "passed": len(rows) - len(findings),
            "failed": len(findings), "rectification_request": request}
