"""Services of quarterly_assessment.bpmn: who may start it, and publishing the results (R-SUP-4, R-SUP-5).

The indicators themselves are computed by the `compute_indicators` service (procedures/indicators.py).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine import clock

from .. import audit, policy
from ..authority import CHECKS_ONLY, RECORDS, Authority
from ..localtime import end_of_day_after
from ..models import Department, Notification, PerformanceRecord, ProcessInstance, User
from ..services import ServiceFailure, current_unit, service

# A module import, not names: importing indicators first loads service.services, which loads
# this module while indicators is still half-initialised.
from . import indicators as _indicators

# Who is below the bar, the rectification's days and the line under which an indicator is named
# as needing improvement are the DMN table's (process_models/assessment_grade.dmn), which the
# supervision group edits: a rectification is required whenever it gives days.
OUTCOME_NAMES = {"commend": "通报表扬", "pass": "达标", "rectify": "限期整改", "criticise": "通报批评并限期整改"}
INDICATOR_NAMES = {"usage_rate": "平台使用率", "timeliness_rate": "文件处理及时率", "approval_pass_rate": "流程审批通过率"}


@service("check_assessment_start", authority=CHECKS_ONLY)
def check_assessment_start(params: dict, context: dict) -> dict:
    """'timer' when the platform started the instance (its quarterly timer), 'manual' when a member
    of the supervision group did, 'refused' for anybody else; `period` is the default period."""
    unit = current_unit.get()
    s = unit.session
    row = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    period = _indicators.previous_quarter(clock.now()).label
    if row is None or row.started_by is None:
        return {"status": "timer", "period": period, "problem": ""}
    user = s.get(User, row.started_by)
    if user is not None and user.active and policy.allows(user, "start", "quarterly_assessment"):
        return {"status": "manual", "period": period, "problem": ""}
    return {"status": "refused", "period": period, "problem": "只有监督小组成员可以发起季度考核。"}


def _problem(period_name: str, name: str, score, grade: str, figures: dict, remarks: str, deadline: str,
             weak_below) -> str:
    weak = [f"{label} {100 * figures[key]:.1f}%" for key, label in INDICATOR_NAMES.items()
            if isinstance(weak_below, int | float) and figures.get(key) is not None and figures[key] < weak_below]
    if figures.get("security_incidents"):
        weak.append(f"安全事故 {figures['security_incidents']} 起")
    text = f"{period_name}平台使用管理考核:{name}得分 {score:g},评定为{grade},未达标。"
    if weak:
        text += "需改进的指标:" + "、".join(weak) + "。"
    if remarks:
        text += f"监督小组意见:{remarks}"
    text += f"请于 {deadline[:10]} 前完成整改。"
    return text


# What each outcome puts on the department's performance record (R-SUP-5); a person the
# supervisors name gets the commendation on their own record.
COMMENDATION = "通报表扬,绩效加分,颁发荣誉证书"
CONSEQUENCES = {"commend": (("commendation", COMMENDATION),),
                "rectify": (("rectification", "限期整改"),),
                "criticise": (("criticism", "通报批评"), ("rectification", "限期整改"))}


def _commended(s, assessments: dict) -> dict:
    """The people the supervisors named to commend (the score form's `commended`, per department
    scored), login name → (user, the reasons given); each must be an active user."""
    named: dict[str, list[str]] = {}
    for code in sorted(assessments):
        verdict = assessments[code] or {}
        people = verdict.get("commended") or []
        if not isinstance(people, list) or not all(isinstance(p, str) and p for p in people):
            raise ServiceFailure(f"the people commended for department '{code}' must be a list of login names")
        reason = str(verdict.get("commendation_reason") or "").strip()
        for username in people:
            reasons = named.setdefault(username, [])
            if reason and reason not in reasons:
                reasons.append(reason)
    if not named:
        return {}
    users = {u.username: u for u in s.scalars(select(User).where(User.username.in_(list(named))))}
    unknown = sorted(n for n in named if n not in users)
    inactive = sorted(n for n in named if n in users and not users[n].active)
    if unknown or inactive:
        problems = ([f"no user {', '.join(unknown)}"] if unknown else []) + (
            [f"{', '.join(inactive)} no longer active"] if inactive else [])
        raise ServiceFailure("publish_assessment: only active users can be commended: " + "; ".join(problems))
    return {n: (users[n], reasons) for n, reasons in sorted(named.items())}


def _performance_records(s, unit, period: str, departments: dict, results: dict, commended: dict) -> None:
    # One commendation per person named, on their own department (R-SUP-5: 记入本人绩效记录).
    for user, reasons in commended.values():
        s.add(PerformanceRecord(
            kind="commendation", period=period, department_id=user.department_id, user_id=user.id,
            detail=COMMENDATION + (f",理由:{';'.join(reasons)}" if reasons else ""),
            assessment_instance_id=unit.instance_id, created_by=unit.actor_id))
    for code, result in results.items():
        for kind, text in CONSEQUENCES.get(result["outcome"], ()):
            deadline = result["rectification_deadline"] if kind == "rectification" else None
            if kind == "rectification" and not deadline:
                continue
            s.add(PerformanceRecord(
                kind=kind, period=period, department_id=departments[code].id, grade=result["grade"],
                score=result["score"], detail=text + (f",期限 {deadline[:10]}" if deadline else ""),
                deadline=datetime.fromisoformat(deadline) if deadline else None,
                assessment_instance_id=unit.instance_id, created_by=unit.actor_id))


@service("publish_assessment", authority=Authority(RECORDS, "publish", "assessment"))
def publish_assessment(params: dict, context: dict) -> dict:
    """Record the results (audit event `assessment_published`, the performance records: the
    departments' and one commendation per person the supervisors named), tell each department
    head, and return the departments below the bar with their rectification requests."""
    unit = current_unit.get()
    s = unit.session
    indicators = params.get("indicators") or {}
    comments = params.get("head_comments") or {}
    assessments = params.get("assessments") or {}
    period, period_name = indicators.get("period"), indicators.get("period_name") or indicators.get("period")
    if not period:
        raise ServiceFailure("publish_assessment needs the indicators")
    now = clock.now()
    departments = {d.code: d for d in s.scalars(select(Department).where(Department.code.in_(list(assessments))))}
    commended = _commended(s, assessments)
    results, below_bar = {}, []
    for code in sorted(assessments):
        verdict = assessments[code] or {}
        if not verdict.get("grade") or code not in departments:
            raise ServiceFailure(f"no grade for department '{code}'")
        figures = (indicators.get("departments") or {}).get(code) or {}
        score = verdict.get("score")
        outcome = verdict.get("outcome")
        days = int(verdict.get("rectification_days") or 0)
        deadline = end_of_day_after(now, days) if days > 0 else None
        results[code] = {
            "name": departments[code].name, "score": score, "grade": verdict["grade"], "outcome": outcome,
            "outcome_name": OUTCOME_NAMES.get(outcome, outcome), "rectification_deadline": deadline,
            "remarks": verdict.get("remarks") or "", "head_comment": comments.get(code) or "",
            "commended": list(verdict.get("commended") or []),
            "indicators": {k: figures.get(k) for k in ("usage_rate", "timeliness_rate", "approval_pass_rate",
                                                        "security_incident_rate", "reference_score")},
        }
        if deadline:
            below_bar.append({
                "department": code,
                "problem": _problem(period_name, departments[code].name, score, verdict["grade"], figures,
                                    verdict.get("remarks") or "", deadline, verdict.get("weak_below")),
                "severity": verdict.get("severity") or "medium",
                "deadline": deadline,
                "category": "other",
                "source": "quarterly_assessment",
                "period": period,
                "grade": verdict["grade"],
                "score": score,
            })
    _performance_records(s, unit, period, departments, results, commended)
    audit.record(s, "assessment_published", "assessment", period, actor_id=unit.actor_id,
                 detail={"period": period, "instance": unit.instance_id, "results": results})
    heads = dict(s.execute(select(User.id, User.active).where(
        User.id.in_([d.head_id for d in departments.values() if d.head_id]))).all())
    notified = 0
    for code, result in results.items():
        head_id = departments[code].head_id
        if not head_id or not heads.get(head_id):
            continue
        title = f"{period_name}平台使用管理考核结果:{result['grade']}({result['outcome_name']})"[:255]
        body = f"{result['name']}得分 {result['score']:g},等级{result['grade']}。"
        if result["rectification_deadline"]:
            body += f"请于 {result['rectification_deadline'][:10]} 前完成整改,整改流程已发起。"
        s.add(Notification(user_id=head_id, kind="assessment", title=title, body=body, instance_id=unit.instance_id))
        notified += 1
    return {
        "period": period,
        "results": results,
        "below_bar": below_bar,
        "commended": [c for c, r in results.items() if r["outcome"] == "commend"],
        "criticised": [c for c, r in results.items() if r["outcome"] == "criticise"],
        "people_commended": list(commended),
        "notified": notified,
    }
