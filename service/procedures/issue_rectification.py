"""Services of issue_rectification.bpmn: register a problem found in an inspection (R-SEC-9, R-SUP-1)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine import clock

from .. import policy
from ..authority import CHECKS_ONLY
from ..models import PerformanceRecord, User
from ..services import ServiceFailure, current_unit, service
from .departments import responsible_department_problem

# Who may record an inspection problem: the inspectors, and the supervision group (R-SUP-1).
SEVERITIES = ("low", "medium", "high")


def _deadline_problem(value) -> str | None:
    if not isinstance(value, str) or not value:
        return "请填写整改期限。"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"整改期限 {value} 不是有效的日期时间。"
    if moment.tzinfo is None:
        # SpiffWorkflow would read a naive time in the server's time zone (pitfall P3).
        return f"整改期限 {value} 需要带时区,例如 2026-12-31T18:00:00+08:00。"
    if moment <= clock.now():
        return f"整改期限 {value} 已经过去,请给出将来的期限。"
    return None


@service("register_rectification", authority=CHECKS_ONLY)
def register_rectification(params: dict, context: dict) -> dict:
    """Check a recorded problem before it goes to the responsible department.

    `origin` is set by the diagram's own scripts after any submitted data: "inspection" when a
    person recorded the problem (the person completing the step must be an inspector or a member of
    the supervision group, R-SUP-1), "message" when another procedure (the quarterly assessment,
    R-SUP-5) asked for it; a bad message is an incident for the administrators, not a form to send
    back to nobody."""
    unit = current_unit.get()
    s = unit.session
    problem, department = responsible_department_problem(s, params.get("department"))
    if problem is None and params.get("severity") not in SEVERITIES:
        problem = "请选择问题严重程度。"
    if problem is None:
        problem = _deadline_problem(params.get("deadline"))
    if params.get("origin") == "message":
        if problem:
            raise ServiceFailure(f"rectification request refused: {problem}")
        _link_performance_record(s, unit.instance_id, department.id, context.get("rectification_request") or {})
    else:
        recorder = s.get(User, unit.actor_id) if unit.actor_id else None
        if recorder is None or not policy.allows(recorder, "record", "finding"):
            return {"status": "forbidden", "problem": "只有检查员或监督小组成员可以登记检查发现的问题。"}
        if problem:
            return {"status": "invalid", "problem": problem}
    return {"status": "ok", "problem": "", "department_name": department.name}


def _link_performance_record(s, instance_id, department_id, data: dict) -> None:
    """Link the department's 限期整改 performance record of the assessment that asked for this
    rectification (R-SUP-5): the record is written by publish_assessment before the message starts
    this instance, so it is found by period and department among the records not yet linked."""
    if not instance_id or data.get("source") != "quarterly_assessment" or not data.get("period"):
        return
    record = s.scalars(select(PerformanceRecord).where(
        PerformanceRecord.kind == "rectification", PerformanceRecord.period == data["period"],
        PerformanceRecord.department_id == department_id,
        PerformanceRecord.rectification_instance_id.is_(None)).order_by(PerformanceRecord.id.desc())).first()
    if record is not None:
        record.rectification_instance_id = instance_id
