"""Services of issue_rectification.bpmn: register a problem found in an inspection (R-SEC-9, R-SUP-1),
and record the penalty when a rectification still fails its re-check (R-SUP-5)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine import clock

from .. import audit, policy
from ..authority import CHECKS_ONLY, RECORDS, Authority, Refused
from ..models import (
    Department,
    Deployment,
    OpenTask,
    PerformanceRecord,
    ProcessDefinition,
    ProcessInstance,
    User,
)
from ..services import ServiceFailure, current_unit, service
from . import indicators as _indicators
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


# The diagram that may write a penalty, and the decision it acts on (R-SUP-5).
PROCESS_KEY = "issue_rectification"
DECISION_ELEMENT = "decide_penalty"


@service("record_penalty", authority=Authority(RECORDS, "publish", "assessment"))
def record_penalty(params: dict, context: dict) -> dict:
    """R-SUP-5 (整改仍不合格的,予以处罚): write the 处罚 (penalty) performance record the supervision
    group decided at `decide_penalty`, naming this rectification instance — so the 限期整改 record
    it belongs to reads 已处罚 (escalated, service/performance.py).

    How many failed re-checks lead to the decision is the diagram's rule (the gateway after the
    re-check), not this function's. The assessment, period and department come from the 限期整改
    record linked to this instance, not from the diagram's data; a problem found in an inspection
    (no such record) is recorded for its responsible department in the current quarter.

    Besides the authority's checks (a diagram deployed by someone without `publish assessment` in
    every department is refused at deploy and here), only the platform's own issue_rectification
    may write a penalty, and only in the request where a member of the supervision group completes
    its `decide_penalty` task with the decision to penalise."""
    unit = current_unit.get()
    s = unit.session
    instance = s.get(ProcessInstance, unit.instance_id) if unit.instance_id else None
    definition = s.get(ProcessDefinition, instance.definition_id) if instance is not None else None
    deployed_by = s.scalar(select(Deployment.deployed_by).where(Deployment.id == definition.deployment_id)) \
        if definition is not None else None
    if definition is None or definition.key != PROCESS_KEY or deployed_by is not None:
        raise Refused("Service 'record_penalty' refused: only the platform's own issue_rectification procedure "
                      "records penalties.")
    actor = s.get(User, unit.actor_id) if unit.actor_id else None
    deciding = s.scalars(select(OpenTask).where(OpenTask.instance_id == instance.id,
                                                OpenTask.element_id == DECISION_ELEMENT)).first()
    if (actor is None or deciding is None or context.get("penalty_decision") != "penalise"
            or not policy.allows(actor, "complete", "task", deciding) or not policy.allows(actor, "publish", "assessment")):
        raise Refused("Service 'record_penalty' refused: it acts only when a member of the supervision group "
                      f"decides to penalise at '{DECISION_ELEMENT}'.")
    penalty = str(params.get("penalty") or "").strip()
    if not penalty:
        raise ServiceFailure("record_penalty needs the penalty")
    existing = s.scalars(select(PerformanceRecord).where(PerformanceRecord.kind == "penalty",
                                                         PerformanceRecord.rectification_instance_id == instance.id)).first()
    if existing is not None:
        return {"record_id": existing.id, "assessment_instance_id": existing.assessment_instance_id,
                "period": existing.period}
    rectification = s.scalars(select(PerformanceRecord).where(
        PerformanceRecord.kind == "rectification", PerformanceRecord.rectification_instance_id == instance.id)
        .order_by(PerformanceRecord.id)).first()
    if rectification is not None:
        department_id, period = rectification.department_id, rectification.period
    else:
        department = s.scalar(select(Department).where(Department.code == params.get("department")))
        if department is None:
            raise ServiceFailure(f"department '{params.get('department')}' does not exist")
        department_id, period = department.id, _indicators.quarter_of(clock.now()).label
    failed = params.get("failed_rechecks")
    detail = penalty + (f"(限期整改复查 {failed} 次仍不合格)" if isinstance(failed, int) else "(限期整改复查仍不合格)")
    notes = str(params.get("decision_notes") or "").strip()
    if notes:
        detail += f"监督小组意见:{notes}"
    record = PerformanceRecord(
        kind="penalty", period=period, department_id=department_id,
        grade=rectification.grade if rectification else None, score=rectification.score if rectification else None,
        detail=detail[:4000], assessment_instance_id=rectification.assessment_instance_id if rectification else None,
        rectification_instance_id=instance.id, created_by=unit.actor_id)
    s.add(record)
    s.flush()
    audit.record(s, "penalty_recorded", "performance_record", record.id, actor_id=unit.actor_id,
                 detail={"instance": instance.id, "period": period, "department_id": department_id,
                         "assessment_instance": record.assessment_instance_id, "penalty": penalty})
    return {"record_id": record.id, "assessment_instance_id": record.assessment_instance_id, "period": period}
