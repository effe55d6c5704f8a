"""The four assessment indicators of R-SUP-3, computed from the platform's own records.

Definitions (numerators, denominators, attribution, edge cases) are in docs/indicators.md; this
module is their executable form and tests/service/test_indicators.py checks the two agree on a
hand-made data set. Every count is a SQL aggregate; Python only assembles the per-department and
per-person figures from grouped rows (one row per user, department or deployment, never per event).

`compute_indicators(session, start, end)` is pure: it reads the database and writes nothing.
The service of the same name (quarterly_assessment.bpmn) chooses the period, records the full
result (per person included) in the audit log and hands the department figures to the diagram.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import String, and_, case, cast, distinct, func, literal_column, or_, select, text, tuple_
from sqlalchemy.orm import Session

from engine import clock
from engine.errors import InvalidDiagram
from engine.loader import parse_xml

from .. import audit, decisions
from ..authority import READS, Authority
from ..localtime import PLATFORM_TZ
from ..models import (
    AuditEvent,
    Department,
    DeploymentFile,
    InstanceStep,
    Notification,
    ProcessDefinition,
    ProcessInstance,
    User,
)
from ..services import ServiceFailure, current_unit, service

# Quarters, days and deadlines are Beijing time (no daylight saving).
CST = PLATFORM_TZ
LOGIN_BURST = 5  # failed sign-ins for one username on one day that make a security incident
SECURITY_INCIDENT_KINDS = ("forbidden",)  # instance incidents that count: sandbox refusals
# Recorded security incidents (docs/indicators.md §5): instances of the security incident
# procedure (when one is deployed), fault reports whose reporter marked them 安全事件, and
# inspection findings of the category security.
SECURITY_PROCESS, SECURITY_NOT_INCIDENT = "security_incident", "end_not_incident"
FAULT_PROCESS, FAULT_STEP, FAULT_FIELD = "fault_report", "report_fault", "affected_area"
FAULT_REFERRED = "raise_security_incident"  # the fault report's diagram started a security incident
FINDING_PROCESS, FINDING_STEP, FINDING_REFUSED = "issue_rectification", "record_problem", "end_refused"
APPROVAL_DECISIONS = ("approve", "return", "reject")
# The reference score's weights and the security component's zero point are the supervision
# group's decision table (docs/indicators.md §6), not constants: the newest deployed
# assessment_weights.dmn, preferably as deployed with quarterly_assessment; process_models/'s file
# in a database where it was never deployed.
WEIGHTS_DECISION, WEIGHTS_FILE, ASSESSMENT_PROCESS = "assessment_weights", "assessment_weights.dmn", "quarterly_assessment"
WEIGHTED = ("usage_rate", "timeliness_rate", "approval_pass_rate", "security")

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


# -- periods ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    label: str  # "2026-Q4", or "2026-10-01/2026-12-31" for a custom range
    name: str  # "2026年第4季度"
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware


def _quarter_start(year: int, quarter: int) -> datetime:
    return datetime(year, 3 * quarter - 2, 1, tzinfo=CST)


def quarter(label: str) -> Period:
    match = _QUARTER.match(label or "")
    if not match:
        raise ValueError(f"period '{label}' is not a quarter like 2026-Q4")
    year, q = int(match.group(1)), int(match.group(2))
    end = _quarter_start(year + 1, 1) if q == 4 else _quarter_start(year, q + 1)
    return Period(label, f"{year}年第{q}季度", _quarter_start(year, q), end)


def quarter_of(moment: datetime) -> Period:
    local = moment.astimezone(CST)
    return quarter(f"{local.year}-Q{(local.month - 1) // 3 + 1}")


def previous_quarter(now: datetime) -> Period:
    """The last quarter that has ended by `now` (at a quarter's first instant, the one before)."""
    return quarter_of(quarter_of(now).start - timedelta(microseconds=1))


def _moment(value: str, name: str) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), CST)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ServiceFailure(f"{name} '{value}' is not an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def period_from(params: dict, now: datetime) -> Period:
    """`period` 'YYYY-Qn', or `start`/`end` (ISO dates are Beijing midnights; end exclusive);
    default: the quarter that just ended. A period that has not ended yet counts up to now."""
    label = str(params.get("period") or "").strip()
    if params.get("start") or params.get("end"):
        if not (params.get("start") and params.get("end")):
            raise ServiceFailure("give both start and end, or a period such as 2026-Q4")
        start, end = _moment(str(params["start"]), "start"), _moment(str(params["end"]), "end")
        last = (end.astimezone(CST) - timedelta(microseconds=1)).date()
        period = Period(f"{start.astimezone(CST).date()}/{last}",
                        f"{start.astimezone(CST).date()} 至 {last}", start, end)
    elif label:
        try:
            period = quarter(label)
        except ValueError as e:
            raise ServiceFailure(str(e)) from None
    else:
        period = previous_quarter(now)
    if period.start >= period.end:
        raise ServiceFailure(f"period {period.label} is empty")
    if period.start > now:
        raise ServiceFailure(f"period {period.label} has not begun yet")
    if period.end > now:
        period = Period(period.label, f"{period.name}(截至 {now.astimezone(CST):%Y-%m-%d %H:%M})", period.start, now)
    return period


# -- the computation ----------------------------------------------------------------------------

def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _local_day(column, dialect: str):
    """The Beijing calendar day of a UTC timestamp column."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column) + literal_column("interval '8 hours'"))
    return func.date(column, "+8 hours")


def _population(s: Session, start: datetime, end: datetime):
    """Users holding an active account at some time in [start, end): created before the end, and
    active now or deactivated (audit `account_deactivated`) at or after the start."""
    deactivated = (select(AuditEvent.object_id.label("user_key"), func.max(AuditEvent.at).label("at"))
                   .where(AuditEvent.action == "account_deactivated", AuditEvent.object_type == "user")
                   .group_by(AuditEvent.object_id).subquery())
    return s.execute(
        select(User.id, User.username, User.full_name, User.department_id)
        .outerjoin(deactivated, deactivated.c.user_key == cast(User.id, String))
        .where(User.created_at < end, or_(User.active.is_(True), deactivated.c.at >= start))
        .order_by(User.id)).all()


def due_elements(s: Session, deployment_ids: set[int]) -> set[tuple[int, str]]:
    """(deployment, element) of every user task whose diagram gives it a due date (property `due`)."""
    out: set[tuple[int, str]] = set()
    if not deployment_ids:
        return out
    rows = s.execute(select(DeploymentFile.deployment_id, DeploymentFile.content).where(
        DeploymentFile.deployment_id.in_(deployment_ids), DeploymentFile.kind == "bpmn"))
    for deployment_id, content in rows:
        try:
            root = parse_xml(content, "deployment")
        except InvalidDiagram:
            continue
        for task in root.iter(f"{{{BPMN}}}userTask"):
            for prop in task.iterfind(f"{{{BPMN}}}extensionElements/{{{SPIFF}}}properties/{{{SPIFF}}}property"):
                if prop.get("name") == "due" and (prop.get("value") or "").strip():
                    out.add((deployment_id, task.get("id")))
    return out


def document_work(s: Session, start: datetime, end: datetime) -> list[tuple[int, int, int]]:
    """(user, department, versions) of the document versions people filed in the period: a new
    document is its version 1, a revision or a restore a later one (documents/library.py)."""
    from ..documents.models import DocumentVersion  # the library imports the service layer

    return [tuple(r) for r in s.execute(
        select(DocumentVersion.created_by, User.department_id, func.count())
        .join(User, User.id == DocumentVersion.created_by)
        .where(DocumentVersion.created_at >= start, DocumentVersion.created_at < end)
        .group_by(DocumentVersion.created_by, User.department_id))]


@dataclass
class Submission:
    """One request that went through approval, decided in the period (docs/indicators.md §4)."""

    instance_id: int
    process_key: str
    user_id: int | None
    department_id: int | None
    decided_at: datetime
    decisions: list[str]
    passed: bool  # eventual pass: approved at last and completed
    first_pass: bool  # passed without ever being returned or rejected


def submissions(s: Session, start: datetime, end: datetime) -> list[Submission]:
    """Requests whose approval was decided in [start, end): their last approval decision is in the
    period and either rejects them or their instance has ended (completed, or cancelled — a request
    withdrawn after a return) by the period's end. A request still under way is not decided yet."""
    touched = (select(InstanceStep.instance_id).where(
        InstanceStep.decision.in_(APPROVAL_DECISIONS), InstanceStep.completed_at >= start,
        InstanceStep.completed_at < end).distinct())
    rows = s.execute(
        select(InstanceStep.instance_id, InstanceStep.decision, InstanceStep.completed_at, ProcessInstance.state,
               ProcessInstance.ended_at, ProcessInstance.started_by, ProcessInstance.department_id,
               ProcessInstance.process_key)
        .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
        .where(InstanceStep.instance_id.in_(touched), InstanceStep.decision.in_(APPROVAL_DECISIONS),
               InstanceStep.completed_at < end)
        .order_by(InstanceStep.instance_id, InstanceStep.completed_at, InstanceStep.id)).all()
    by_instance: dict[int, list] = {}
    for row in rows:
        by_instance.setdefault(row.instance_id, []).append(row)
    out = []
    for instance_id, steps in by_instance.items():
        last = steps[-1]
        ended = last.state in ("completed", "cancelled") and (last.ended_at is None or last.ended_at < end)
        if last.completed_at < start or not (ended or last.decision == "reject"):
            continue
        decisions = [st.decision for st in steps]
        passed = last.decision == "approve" and last.state == "completed"
        out.append(Submission(instance_id, last.process_key, last.started_by, last.department_id, last.completed_at,
                              decisions, passed, passed and set(decisions) == {"approve"}))
    return out


@dataclass
class SecurityRecord:
    """A recorded security incident of the period (docs/indicators.md §5, kinds 3–5)."""

    kind: str  # procedure | fault | finding
    instance_id: int
    process_key: str
    user_id: int | None
    department_id: int | None
    at: datetime
    summary: str | None = None


def security_records(s: Session, start: datetime, end: datetime) -> list[SecurityRecord]:
    in_period = lambda column: and_(column >= start, column < end)  # noqa: E731

    def passed(process_key: str, element: str):
        """Instances of `process_key` that went through `element`."""
        return (select(InstanceStep.instance_id).join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
                .where(ProcessInstance.process_key == process_key, InstanceStep.element_id == element))

    # An incident the platform assessed as none is not one; a security fault referred to the
    # procedure counts once, as the procedure's incident.
    out = [SecurityRecord("procedure", r.id, SECURITY_PROCESS, r.started_by, r.department_id, r.started_at,
                          r.business_key)
           for r in s.execute(select(ProcessInstance.id, ProcessInstance.started_by, ProcessInstance.department_id,
                                     ProcessInstance.started_at, ProcessInstance.business_key)
                              .where(ProcessInstance.process_key == SECURITY_PROCESS,
                                     ProcessInstance.state != "cancelled", in_period(ProcessInstance.started_at),
                                     ProcessInstance.id.not_in(passed(SECURITY_PROCESS, SECURITY_NOT_INCIDENT))))]
    referred = set(s.scalars(passed(FAULT_PROCESS, FAULT_REFERRED)))

    def reported(process_key: str, element: str):
        return s.execute(
            select(InstanceStep.instance_id, InstanceStep.completed_at, InstanceStep.data,
                   ProcessInstance.started_by, ProcessInstance.department_id)
            .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
            .where(ProcessInstance.process_key == process_key, InstanceStep.element_id == element,
                   in_period(InstanceStep.completed_at))
            .order_by(InstanceStep.instance_id, InstanceStep.completed_at, InstanceStep.id)).all()

    faults: dict[int, SecurityRecord] = {}
    for r in reported(FAULT_PROCESS, FAULT_STEP):  # the last report of an instance counts (a resubmission)
        data = r.data if isinstance(r.data, dict) else {}
        faults.pop(r.instance_id, None)
        if data.get(FAULT_FIELD) == "security" and r.instance_id not in referred:
            faults[r.instance_id] = SecurityRecord("fault", r.instance_id, FAULT_PROCESS, r.started_by,
                                                   r.department_id, r.completed_at, str(data.get("symptom") or "")[:200])
    out += faults.values()

    refused = set(s.scalars(select(InstanceStep.instance_id).where(InstanceStep.element_id == FINDING_REFUSED)
                            .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
                            .where(ProcessInstance.process_key == FINDING_PROCESS)))
    codes = dict(s.execute(select(Department.code, Department.id)).all())
    findings: dict[int, SecurityRecord] = {}
    for r in reported(FINDING_PROCESS, FINDING_STEP):
        data = r.data if isinstance(r.data, dict) else {}
        findings.pop(r.instance_id, None)
        if data.get("category") == "security" and r.instance_id not in refused:
            # A finding is about the department that must rectify it, not about the inspector.
            findings[r.instance_id] = SecurityRecord("finding", r.instance_id, FINDING_PROCESS, None,
                                                     codes.get(data.get("department")), r.completed_at,
                                                     str(data.get("problem") or "")[:200])
    out += findings.values()
    return sorted(out, key=lambda r: (r.at, r.instance_id))


def _bursts(s: Session, start: datetime, end: datetime):
    """(username, Beijing day) with LOGIN_BURST or more failed sign-ins, as a subquery."""
    day = _local_day(AuditEvent.at, s.bind.dialect.name)
    return (select(AuditEvent.object_id.label("username"), day.label("day"))
            .where(AuditEvent.action == "login_failed", AuditEvent.at >= start, AuditEvent.at < end)
            .group_by(AuditEvent.object_id, day).having(func.count() >= LOGIN_BURST).subquery())


def login_bursts(s: Session, start: datetime, end: datetime) -> list[tuple[str, object, int | None]]:
    """(username, day, department of that user or None) of each sign-in failure burst."""
    bursts = _bursts(s, start, end)
    return [tuple(r) for r in s.execute(
        select(bursts.c.username, bursts.c.day, User.department_id)
        .outerjoin(User, User.username == bursts.c.username).order_by(bursts.c.day, bursts.c.username))]


def _incident_rows(s: Session, start: datetime, end: datetime) -> list[tuple[int | None, int | None, int]]:
    """(initiator, department, count) of instance incidents of a security kind recorded in the period."""
    kinds = ", ".join(f"'{k}'" for k in SECURITY_INCIDENT_KINDS)  # module constants, not input
    if s.bind.dialect.name == "postgresql":
        sql = text(f"""
            SELECT pi.started_by, pi.department_id, count(*)
            FROM process_instances pi
            CROSS JOIN LATERAL json_array_elements(
                CASE WHEN json_typeof(pi.incidents) = 'array' THEN pi.incidents ELSE '[]'::json END) AS j(value)
            WHERE j.value->>'kind' IN ({kinds})
              AND (j.value->>'at')::timestamptz >= :start AND (j.value->>'at')::timestamptz < :end
            GROUP BY pi.started_by, pi.department_id""")
        params = {"start": start, "end": end}
    else:
        sql = text(f"""
            SELECT pi.started_by, pi.department_id, count(*)
            FROM process_instances pi, json_each(pi.incidents) AS j
            WHERE pi.incidents IS NOT NULL AND json_type(pi.incidents) = 'array'
              AND json_extract(j.value, '$.kind') IN ({kinds})
              AND julianday(json_extract(j.value, '$.at')) >= julianday(:start)
              AND julianday(json_extract(j.value, '$.at')) < julianday(:end)
            GROUP BY pi.started_by, pi.department_id""")
        params = {"start": start.astimezone(UTC).isoformat(), "end": end.astimezone(UTC).isoformat()}
    return [(r[0], r[1], int(r[2])) for r in s.execute(sql, params)]


SECURITY_COUNTS = ("login_bursts", "forbidden_incidents", "security_procedures", "security_faults",
                   "security_findings")
SECURITY_KIND_COUNTS = {"procedure": "security_procedures", "fault": "security_faults", "finding": "security_findings"}


def _counter() -> dict:
    return {
        "tasks_completed": 0, "instances_started": 0, "documents_filed": 0,
        "due_tasks": 0, "on_time_tasks": 0, "late_tasks": 0, "overdue_open_tasks": 0,
        "approval_decisions": 0, "approvals_passed": 0, "approvals_returned": 0, "approvals_rejected": 0,
        "submissions": 0, "submissions_passed": 0, "submissions_first_pass": 0,
        "login_bursts": 0, "forbidden_incidents": 0,
        "security_procedures": 0, "security_faults": 0, "security_findings": 0,
    }


def _rates(c: dict, active_users: int) -> dict:
    c["timeliness_rate"] = _ratio(c["on_time_tasks"], c["due_tasks"])
    c["approval_pass_rate"] = _ratio(c["submissions_passed"], c["submissions"])
    c["first_pass_rate"] = _ratio(c["submissions_first_pass"], c["submissions"])
    c["security_incidents"] = sum(c[k] for k in SECURITY_COUNTS)
    c["security_incident_rate"] = (100.0 * c["security_incidents"] / active_users) if active_users else None
    return c


@dataclass(frozen=True)
class Weights:
    """What assessment_weights.dmn decides: a weight per component, and the security incident rate
    (incidents per 100 active users) at which the security component reaches 0."""

    usage_rate: float
    timeliness_rate: float
    approval_pass_rate: float
    security: float
    security_zero_at: float
    source: str  # the table they come from: "assessment_weights.dmn (deployment 12)", or the file's path

    def of(self, component: str) -> float:
        return getattr(self, component)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in (*WEIGHTED, "security_zero_at", "source")}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def assessment_weights(s: Session | None, period_start: datetime | None = None) -> Weights:
    """The weights for a period starting at `period_start` (default: now), from the newest deployed
    assessment_weights.dmn (`s` None, or none deployed: the table file in process_models/), run as
    its business rule task would run it (service/decisions.py)."""
    row = decisions.newest_table(s, WEIGHTS_DECISION, ASSESSMENT_PROCESS) if s is not None else None
    if row is not None:
        file, content, source = row.name, row.content, f"{row.name} (deployment {row.deployment_id})"
    else:
        try:
            source, content = decisions.shipped_table(WEIGHTS_FILE)
        except decisions.DecisionFailed as e:
            raise ServiceFailure(f"the weights of the reference score: {e}") from None
        file = WEIGHTS_FILE
    day = (period_start or clock.now()).astimezone(CST).date().isoformat()
    try:
        decided = decisions.decide(file, content, WEIGHTS_DECISION, {"period_start": day})
    except decisions.DecisionFailed as e:
        raise ServiceFailure(f"the weights of the reference score: {e}") from None
    weights = decided.get("weights")
    if not isinstance(weights, dict):
        raise ServiceFailure(f"{source}: no rule of {WEIGHTS_DECISION} gives the weights for a period from {day}")
    wrong = [k for k in WEIGHTED if not (_number(weights.get(k)) and weights[k] >= 0)]
    if not (_number(weights.get("security_zero_at")) and weights["security_zero_at"] > 0):
        wrong.append("security_zero_at")
    if wrong:
        raise ServiceFailure(f"{source}: {WEIGHTS_DECISION} must give non-negative numbers (a positive "
                             f"security_zero_at); wrong or missing: {', '.join(wrong)}")
    return Weights(*(weights[k] for k in (*WEIGHTED, "security_zero_at")), source=source)


def reference_score(figures: dict, weights: Weights | None = None) -> float | None:
    """Advisory score 0–100 from the indicators (docs/indicators.md §6); the supervisors decide.
    `weights` default: the table file shipped in process_models/."""
    weights = weights or assessment_weights(None)
    parts = {
        "usage_rate": figures.get("usage_rate"),
        "timeliness_rate": figures.get("timeliness_rate"),
        "approval_pass_rate": figures.get("approval_pass_rate"),
        "security": None if figures.get("security_incident_rate") is None
        else max(0.0, 1.0 - figures["security_incident_rate"] / weights.security_zero_at),
    }
    weight = sum(weights.of(k) for k, v in parts.items() if v is not None)
    if not weight:
        return None
    return round(100.0 * sum(weights.of(k) * v for k, v in parts.items() if v is not None) / weight, 1)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def summary(d: dict) -> str:
    rate = d["security_incident_rate"]
    return (f"平台使用率 {_percent(d['usage_rate'])}({d['used_users']}/{d['active_users']} 人);"
            f"文件处理及时率 {_percent(d['timeliness_rate'])}({d['on_time_tasks']}/{d['due_tasks']} 项限时任务);"
            f"流程审批通过率 {_percent(d['approval_pass_rate'])}({d['submissions_passed']}/{d['submissions']} 件,"
            f"一次通过率 {_percent(d['first_pass_rate'])});"
            f"安全事故发生率 {'—' if rate is None else f'{rate:.1f}'} 起/百人({d['security_incidents']} 起)")


@dataclass
class Indicators:
    departments: dict[str, dict]
    platform: dict
    weights: Weights | None = None  # the reference score's


def compute_indicators(session: Session, period_start: datetime, period_end: datetime) -> dict[str, dict]:
    """{department code: {usage_rate, timeliness_rate, approval_pass_rate, security_incident_rate,
    counts…, reference_score, summary, people: {username: {…}}}} for [period_start, period_end)."""
    return compute(session, period_start, period_end).departments


def compute(s: Session, start: datetime, end: datetime) -> Indicators:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("period bounds must be timezone-aware")
    in_period = lambda column: and_(column >= start, column < end)  # noqa: E731

    departments = s.execute(select(Department.id, Department.code, Department.name, Department.head_id)
                            .order_by(Department.code)).all()
    heads = dict(s.execute(select(User.id, User.username).where(
        User.id.in_([d.head_id for d in departments if d.head_id]), User.active.is_(True))).all())
    population = _population(s, start, end)
    weights = assessment_weights(s, start)

    # user id → counters; department id → counters (for events attributed beyond the population)
    people = {p.id: _counter() for p in population}
    dept_counts = {d.id: _counter() for d in departments}
    platform = _counter()

    def add(user_id: int | None, department_id: int | None, key: str, n: int) -> None:
        platform[key] += n
        if user_id in people:
            people[user_id][key] += n
        if department_id in dept_counts:
            dept_counts[department_id][key] += n

    # 1. usage: tasks completed and instances started, per person (R-SUP-3 platform usage rate)
    for user_id, department_id, n in s.execute(
            select(InstanceStep.user_id, User.department_id, func.count())
            .join(User, User.id == InstanceStep.user_id)
            .where(in_period(InstanceStep.completed_at)).group_by(InstanceStep.user_id, User.department_id)):
        add(user_id, department_id, "tasks_completed", n)
    for user_id, department_id, n in s.execute(
            select(ProcessInstance.started_by, User.department_id, func.count())
            .join(User, User.id == ProcessInstance.started_by)
            .where(in_period(ProcessInstance.started_at)).group_by(ProcessInstance.started_by, User.department_id)):
        add(user_id, department_id, "instances_started", n)

    for user_id, department_id, n in document_work(s, start, end):
        add(user_id, department_id, "documents_filed", n)

    # 2. timeliness: (a) completions of tasks with a due date, late if flagged overdue first
    flagged = (select(AuditEvent.object_id.label("task_id"), func.min(AuditEvent.at).label("at"))
               .where(AuditEvent.action == "task_overdue", AuditEvent.object_type == "task", AuditEvent.at < end)
               .group_by(AuditEvent.object_id).subquery())
    pairs = s.execute(
        select(ProcessDefinition.deployment_id, InstanceStep.element_id).distinct()
        .select_from(InstanceStep).join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(InstanceStep.user_id.is_not(None), in_period(InstanceStep.completed_at))).all()
    due = due_elements(s, {p[0] for p in pairs})
    due_pairs = [p for p in (tuple(r) for r in pairs) if p in due]
    if due_pairs:
        late = and_(flagged.c.at.is_not(None), flagged.c.at <= InstanceStep.completed_at)
        for user_id, department_id, n, n_late in s.execute(
                select(InstanceStep.user_id, User.department_id, func.count(),
                       func.sum(case((late, 1), else_=0)))
                .select_from(InstanceStep)
                .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
                .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                .join(User, User.id == InstanceStep.user_id)
                .outerjoin(flagged, flagged.c.task_id == InstanceStep.task_id)
                .where(InstanceStep.user_id.is_not(None), in_period(InstanceStep.completed_at),
                       tuple_(ProcessDefinition.deployment_id, InstanceStep.element_id).in_(due_pairs))
                .group_by(InstanceStep.user_id, User.department_id)):
            n_late = int(n_late or 0)
            add(user_id, department_id, "due_tasks", n)
            add(user_id, department_id, "late_tasks", n_late)
            add(user_id, department_id, "on_time_tasks", n - n_late)

    # (b) tasks flagged overdue in the period and not completed before its end: attributed to
    # whoever the overdue notice went to; the platform counts each task once.
    open_overdue = (select(AuditEvent.object_id.label("task_id"))
                    .where(AuditEvent.action == "task_overdue", AuditEvent.object_type == "task",
                           in_period(AuditEvent.at))
                    .where(~select(InstanceStep.id).where(InstanceStep.task_id == AuditEvent.object_id,
                                                          InstanceStep.completed_at < end).exists())
                    .distinct().subquery())
    n_open = s.scalar(select(func.count()).select_from(open_overdue)) or 0
    platform["due_tasks"] += n_open
    platform["overdue_open_tasks"] += n_open
    notified = (select(open_overdue.c.task_id, Notification.user_id, User.department_id)
                .join(Notification, and_(Notification.task_id == open_overdue.c.task_id, Notification.kind == "overdue"))
                .join(User, User.id == Notification.user_id).distinct().subquery())
    for user_id, n in s.execute(select(notified.c.user_id, func.count(distinct(notified.c.task_id)))
                                .group_by(notified.c.user_id)):
        if user_id in people:
            people[user_id]["due_tasks"] += n
            people[user_id]["overdue_open_tasks"] += n
    for department_id, n in s.execute(select(notified.c.department_id, func.count(distinct(notified.c.task_id)))
                                      .group_by(notified.c.department_id)):
        if department_id in dept_counts:
            dept_counts[department_id]["due_tasks"] += n
            dept_counts[department_id]["overdue_open_tasks"] += n

    # 3. approval pass rate: decisions on instances, attributed to the submitting department and initiator
    for user_id, department_id, decision, n in s.execute(
            select(ProcessInstance.started_by, ProcessInstance.department_id, InstanceStep.decision, func.count())
            .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
            .where(InstanceStep.decision.in_(("approve", "return", "reject")), in_period(InstanceStep.completed_at))
            .group_by(ProcessInstance.started_by, ProcessInstance.department_id, InstanceStep.decision)):
        add(user_id, department_id, "approval_decisions", n)
        key = {"approve": "approvals_passed", "return": "approvals_returned", "reject": "approvals_rejected"}[decision]
        add(user_id, department_id, key, n)
    # … and the rates themselves over the requests decided in the period
    for sub in submissions(s, start, end):
        add(sub.user_id, sub.department_id, "submissions", 1)
        add(sub.user_id, sub.department_id, "submissions_passed", int(sub.passed))
        add(sub.user_id, sub.department_id, "submissions_first_pass", int(sub.first_pass))

    # 4. security incidents: sign-in failure bursts, sandbox refusals recorded on instances, and
    # the recorded ones (security procedure, security faults, findings)
    for user_id, department_id, n in s.execute(
            select(User.id, User.department_id, func.count()).select_from(bursts := _bursts(s, start, end))
            .outerjoin(User, User.username == bursts.c.username).group_by(User.id, User.department_id)):
        add(user_id, department_id, "login_bursts", n)
    for user_id, department_id, n in _incident_rows(s, start, end):
        add(user_id, department_id, "forbidden_incidents", n)
    for record in security_records(s, start, end):
        add(record.user_id, record.department_id, SECURITY_KIND_COUNTS[record.kind], 1)

    # Assemble: rates per person, per department, for the platform.
    used_by_dept: dict[int, int] = {}
    active_by_dept: dict[int, int] = {}
    by_dept_people: dict[int, dict] = {}
    for p in population:
        c = people[p.id]
        c["used"] = bool(c["tasks_completed"] or c["instances_started"] or c["documents_filed"])
        active_by_dept[p.department_id] = active_by_dept.get(p.department_id, 0) + 1
        used_by_dept[p.department_id] = used_by_dept.get(p.department_id, 0) + int(c["used"])
        _rates(c, 0)
        c["security_incident_rate"] = None  # a rate per hundred users means nothing for one person
        c["full_name"] = p.full_name
        by_dept_people.setdefault(p.department_id, {})[p.username] = c

    result: dict[str, dict] = {}
    for d in departments:
        c = dept_counts[d.id]
        active, used = active_by_dept.get(d.id, 0), used_by_dept.get(d.id, 0)
        c.update(name=d.name, head=heads.get(d.head_id), active_users=active, used_users=used,
                 usage_rate=_ratio(used, active))
        _rates(c, active)
        c["reference_score"] = reference_score(c, weights) if active else None
        c["summary"] = summary(c)
        c["people"] = by_dept_people.get(d.id, {})
        result[d.code] = c
    active_all = len(population)
    used_all = sum(1 for p in population if people[p.id]["used"])
    platform.update(active_users=active_all, used_users=used_all, usage_rate=_ratio(used_all, active_all))
    _rates(platform, active_all)
    platform["reference_score"] = reference_score(platform, weights) if active_all else None
    platform["summary"] = summary(platform)
    return Indicators(result, platform, weights)


# -- the service --------------------------------------------------------------------------------

@service("compute_indicators", authority=Authority(READS, "read", "analytics"))
def compute_indicators_service(params: dict, context: dict) -> dict:
    """Indicators per department for `period` ('YYYY-Qn'), or `start`/`end`; default the quarter
    that just ended by the engine clock. The per-person figures go to the audit log only."""
    unit = current_unit.get()
    s = unit.session
    period = period_from(params, clock.now())
    figures = compute(s, period.start, period.end)
    departments = {code: {k: v for k, v in d.items() if k != "people"} for code, d in figures.departments.items()}
    assessed = [code for code, d in figures.departments.items() if d["active_users"]]
    audit.record(s, "indicators_computed", "assessment", period.label, actor_id=unit.actor_id, detail={
        "period": period.label, "start": period.start.isoformat(), "end": period.end.isoformat(),
        "instance": unit.instance_id, "departments": figures.departments, "platform": figures.platform,
        "weights": figures.weights.as_dict()})
    return {
        "period": period.label,
        "period_name": period.name,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "departments": departments,
        "assessed": assessed,
        "platform": figures.platform,
    }
