"""Analytics for supervisors and administrators: element statistics of a process (R-WF-4) and the
four indicators over time (R-SUP-3), with who may see which department.

Element statistics are computed from `instance_steps` (the history), per element and per process
version, over steps *completed* in a period. Definitions (docs/analytics.md):

- duration = completed_at − started_at (the user task became ready → it was completed);
- waiting  = claimed_at − started_at, only for tasks someone claimed before completing them
  (`waited` counts them); a task completed without a claim has no waiting time;
- median and p90 interpolate linearly between the two nearest ranks (PostgreSQL's
  percentile_cont, numpy's default);
- returns = approval decisions "return" on the element; re-entries = completions of the element
  beyond the first in one instance (loops back to it), both counted in the period.

Only steps with a ready time (user tasks recorded since it was kept) take part. Each history row
carries its duration and waiting time in seconds (written with the row); they are read with one
indexed range query and aggregated in Python per element, one code path for SQLite and PostgreSQL. The indicators themselves are `service.procedures.indicators.compute`; this module
chooses periods, filters departments and lists the records behind a number.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import String, and_, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import clock
from engine.errors import InvalidDiagram
from engine.loader import parse_xml

from . import policy
from .errors import Forbidden, Invalid, NotFound
from .models import (
    AuditEvent,
    Department,
    DeploymentFile,
    IndicatorSnapshot,
    InstanceStep,
    Notification,
    ProcessDefinition,
    ProcessInstance,
    User,
)
from .procedures.indicators import (
    CST,
    SECURITY_INCIDENT_KINDS,
    Period,
    compute,
    due_elements,
    login_bursts,
    quarter,
    quarter_of,
    security_records,
    submissions,
)

INDICATORS = ("usage_rate", "timeliness_rate", "approval_pass_rate", "security_incident_rate")
# The dashboard's columns: the approval pass rate both ways (docs/indicators.md §4).
SHOWN = ("usage_rate", "timeliness_rate", "first_pass_rate", "approval_pass_rate", "security_incident_rate")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BOTTLENECKS = 5


# -- who may see what ---------------------------------------------------------------------------

def scope(user: User) -> int | None:
    """None: every department (system admin, supervision group, platform admins); otherwise the
    one department a department administrator may see. Anyone else is refused."""
    widest = policy.widest(user, "read", "analytics")
    if widest == policy.ALL:
        return None
    if widest == policy.DEPARTMENT:
        return user.department_id
    raise Forbidden(_("Only supervisors and administrators may see analytics."))


def may_see(user: User) -> bool:
    try:
        scope(user)
    except Forbidden:
        return False
    return True


# -- periods ------------------------------------------------------------------------------------

def month(label: str) -> Period:
    match = _MONTH.match(label or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(label)
    year, m = int(match.group(1)), int(match.group(2))
    start = datetime(year, m, 1, tzinfo=CST)
    end = datetime(year + (m == 12), m % 12 + 1, 1, tzinfo=CST)
    return Period(label, f"{year}年{m}月", start, end)


def month_of(moment: datetime) -> Period:
    local = moment.astimezone(CST)
    return month(f"{local.year}-{local.month:02d}")


def period(args: dict, now: datetime | None = None) -> Period:
    """`period` = '2026-Q4' or '2026-11', or `start`/`end` ISO dates (Beijing midnights, end
    exclusive); default the current quarter so far."""
    now = now or clock.now()
    label = str(args.get("period") or "").strip()
    start, end = str(args.get("start") or "").strip(), str(args.get("end") or "").strip()
    if start or end:
        message = _("Give a start and an end date (YYYY-MM-DD), the start first.")
        try:
            if not (_DATE.match(start) and _DATE.match(end)) or start >= end:
                raise ValueError(start, end)
            begin = datetime.fromisoformat(start).replace(tzinfo=CST)
            finish = datetime.fromisoformat(end).replace(tzinfo=CST)
        except ValueError:
            field = "end" if _DATE.match(start) and _valid_date(start) else "start"
            raise Invalid(message, [{"field": field, "message": message}]) from None
        chosen = Period(f"{start}/{end}", f"{start} – {end}", begin, finish)
    elif label:
        try:
            chosen = month(label) if _MONTH.match(label) else quarter(label)
        except ValueError:
            message = _("'%(value)s' is not a period such as 2026-Q4 or 2026-11.", value=label)
            raise Invalid(message, [{"field": "period", "message": message}]) from None
    else:
        chosen = quarter_of(now)
    if chosen.start > now:
        message = _("The period %(label)s has not begun yet.", label=chosen.label)
        raise Invalid(message, [{"field": "period", "message": message}])
    return chosen  # a period still running simply has no records after now


def _valid_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def recent(grain: str, count: int, now: datetime | None = None) -> list[Period]:
    """The last `count` months or quarters up to the current one, oldest first."""
    now = now or clock.now()
    out: list[Period] = []
    moment = now
    for _i in range(count):
        p = month_of(moment) if grain == "month" else quarter_of(moment)
        out.append(p)
        moment = p.start - timedelta(microseconds=1)
    return out[::-1]


# -- element statistics (R-WF-4) ----------------------------------------------------------------

def percentile(ordered: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (percentile_cont); `ordered` is sorted."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class ElementStats:
    count: int = 0
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    waited: int = 0
    wait_mean: float | None = None
    wait_median: float | None = None
    wait_p90: float | None = None
    returns: int = 0
    reentries: int = 0


def _stats(rows: list) -> ElementStats:
    """rows: (instance id, decision, duration, wait) of one element (one version, or all)."""
    durations = sorted([r[2] for r in rows])
    waits = sorted([r[3] for r in rows if r[3] is not None])
    r3 = lambda v: None if v is None else round(v, 3)  # noqa: E731 - seconds to the millisecond
    return ElementStats(
        count=len(durations), mean=r3(sum(durations) / len(durations)) if durations else None,
        median=r3(percentile(durations, 0.5)), p90=r3(percentile(durations, 0.9)),
        waited=len(waits), wait_mean=r3(sum(waits) / len(waits)) if waits else None,
        wait_median=r3(percentile(waits, 0.5)), wait_p90=r3(percentile(waits, 0.9)),
        returns=sum(1 for r in rows if r[1] == "return"),
        reentries=len(rows) - len({r[0] for r in rows}))


def element_stats(s: Session, key: str, version: int | None, chosen: Period, department_id: int | None) -> dict:
    """Statistics per element over all chosen versions, and per element per version."""
    query = select(ProcessDefinition.id, ProcessDefinition.version, ProcessDefinition.deployment_id).where(
        ProcessDefinition.key == key).order_by(ProcessDefinition.version)
    if version is not None:
        query = query.where(ProcessDefinition.version == version)
    chosen_definitions = s.execute(query).all()
    if not chosen_definitions:
        raise NotFound(_("Process '%(key)s' is not deployed.", key=key))
    definitions = {d.id: d.version for d in chosen_definitions}
    names = element_names(s, [d.deployment_id for d in chosen_definitions])
    # Only columns of the covering index: SQLite and PostgreSQL answer from the index alone.
    rows = (select(InstanceStep.element_id, InstanceStep.definition_id, InstanceStep.instance_id,
                   InstanceStep.decision, InstanceStep.duration_s, InstanceStep.wait_s)
            .where(InstanceStep.definition_id.in_(list(definitions)), InstanceStep.duration_s.is_not(None),
                   InstanceStep.completed_at >= chosen.start.astimezone(UTC),
                   InstanceStep.completed_at < chosen.end.astimezone(UTC)))
    # Sorted by SQL (C, on the index's rows), so each group arrives in order and sorting it again
    # in Python is a linear check.
    rows = rows.order_by(InstanceStep.element_id, InstanceStep.duration_s)
    if department_id is not None:
        rows = rows.join(ProcessInstance, and_(ProcessInstance.id == InstanceStep.instance_id,
                                               ProcessInstance.department_id == department_id))
    # One pass to group the rows (the only per-row Python); the rest is sorting and summing lists.
    groups: dict[tuple[str, int], list] = {}
    for element_id, definition_id, instance_id, decision, duration, wait in s.execute(rows):
        group = groups.get((element_id, definition_id))
        if group is None:
            group = groups[(element_id, definition_id)] = []
        group.append((instance_id, decision, duration, wait))
    per_version = {(e, definitions[d]): _stats(g) for (e, d), g in groups.items()}
    elements_seen = {e for e, _d in groups}
    stats = {e: _stats([r for (e2, _d), g in groups.items() if e2 == e for r in g]) for e in elements_seen}
    names = {e: names.get(e) or e for e in elements_seen}
    slowest = max((st.mean or 0.0 for st in stats.values()), default=0.0)
    elements = {}
    for element_id, st in sorted(stats.items()):
        heat = round((st.mean or 0.0) / slowest, 3) if slowest else 0.0
        elements[element_id] = {
            "name": names[element_id], "heat": heat, "label": duration_label(st.mean),
            "title": _("%(name)s: %(count)s done, mean %(mean)s, median %(median)s, p90 %(p90)s",
                       name=names[element_id], count=st.count, mean=duration_label(st.mean),
                       median=duration_label(st.median), p90=duration_label(st.p90)),
            "stats": asdict(st),
            "versions": {str(v): asdict(st) for (e, v), st in sorted(per_version.items()) if e == element_id},
        }
    bottlenecks = sorted(elements, key=lambda e: (-(stats[e].mean or 0.0), e))[:BOTTLENECKS]
    return {
        "process_key": key, "versions": sorted(definitions.values()),
        "period": period_json(chosen), "elements": elements, "bottlenecks": bottlenecks,
    }


def element_names(s: Session, deployment_ids: list[int]) -> dict[str, str]:
    """Element id → name from the diagrams (later deployments win), for tables and badges."""
    names: dict[str, str] = {}
    for (content,) in s.execute(select(DeploymentFile.content).where(
            DeploymentFile.deployment_id.in_(deployment_ids), DeploymentFile.kind == "bpmn")
            .order_by(DeploymentFile.deployment_id)):
        try:
            root = parse_xml(content, "deployment")
        except InvalidDiagram:
            continue
        for element in root.iter():
            if isinstance(element.tag, str) and element.get("id") and element.get("name"):
                names[element.get("id")] = element.get("name")
    return names


def duration_label(value: float | None) -> str:
    """A duration for a badge or a table cell: '45 s', '12 min', '3.5 h', '2.1 d'."""
    if value is None:
        return "—"
    if value < 60:
        return _("%(n)s s", n=f"{value:.0f}")
    if value < 3600:
        return _("%(n)s min", n=f"{value / 60:.0f}")
    if value < 86400:
        return _("%(n)s h", n=f"{value / 3600:.1f}")
    return _("%(n)s d", n=f"{value / 86400:.1f}")


def period_json(p: Period) -> dict:
    return {"label": p.label, "name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat()}


# -- indicators (R-SUP-3) -----------------------------------------------------------------------

# Snapshots: computing the indicators reads every history row of the period (a second or more
# with a year of data), so dashboards read a stored result. One for a running period serves for
# FRESH; one taken after its period ended serves a day (the figures of a closed period move only
# when people change department or leave). The scheduler refreshes the recent ones (SNAPSHOT job).
FRESH = timedelta(minutes=15)
FINAL = timedelta(days=1)
REFRESH_EVERY = timedelta(minutes=5)
REFRESH_PER_RUN = 3  # each refresh holds a transaction; spread a cold start over several runs
SNAPSHOT_JOB = ("snapshots", "indicators")  # scheduled_jobs (kind, ref)


# Bumped whenever a definition changes (docs/indicators.md): snapshots of another one are stale.
DEFINITIONS_VERSION = 2


def _fresh(snapshot: IndicatorSnapshot, chosen: Period, now: datetime) -> bool:
    if (snapshot.figures or {}).get("definitions") != DEFINITIONS_VERSION:
        return False
    age = now - snapshot.computed_at
    return age < (FINAL if snapshot.computed_at >= chosen.end else FRESH)


def _snapshot(s: Session, chosen: Period) -> IndicatorSnapshot | None:
    return s.scalar(select(IndicatorSnapshot).where(IndicatorSnapshot.period_start == chosen.start,
                                                    IndicatorSnapshot.period_end == chosen.end))


def _recompute(s: Session, chosen: Period, now: datetime) -> tuple[dict, dict]:
    result = compute(s, chosen.start, chosen.end)
    figures = {"departments": {code: {k: v for k, v in d.items() if k != "people"}
                               for code, d in result.departments.items()}, "platform": result.platform,
               "definitions": DEFINITIONS_VERSION}
    people = {code: d["people"] for code, d in result.departments.items()}
    try:
        with s.begin_nested():
            row = _snapshot(s, chosen)
            if row is None:
                s.add(IndicatorSnapshot(period_start=chosen.start, period_end=chosen.end, computed_at=now,
                                        figures=figures, people=people))
            else:
                row.figures, row.people, row.computed_at = figures, people, now
        s.commit()
    except IntegrityError:  # another request stored the same period first
        s.rollback()
    return figures, people


def figures(s: Session, chosen: Period, with_people: bool = True) -> tuple[dict, datetime]:
    """The indicators of a period from a fresh snapshot, or computed now (and stored); with
    `with_people` each department carries its people as in `compute`."""
    now = clock.now()
    snapshot = _snapshot(s, chosen)
    if snapshot is not None and _fresh(snapshot, chosen, now):
        result, computed_at = snapshot.figures, snapshot.computed_at
        people = snapshot.people if with_people else {}
    else:
        (result, people), computed_at = _recompute(s, chosen, now), now
    if with_people:
        result = {**result, "departments": {code: {**d, "people": people.get(code, {})}
                                            for code, d in result["departments"].items()}}
    return result, computed_at


def refresh_snapshots(s: Session, limit: int = REFRESH_PER_RUN) -> list[str]:
    """Recompute the stale snapshots of the last 12 months and 4 quarters, running periods first."""
    now = clock.now()
    stale = []
    for p in recent("month", 12) + recent("quarter", 4):
        snapshot = _snapshot(s, p)
        if snapshot is None or not _fresh(snapshot, p, now):
            stale.append(p)
    stale.sort(key=lambda p: p.end <= now)  # running periods (end in the future) first
    for p in stale[:limit]:
        _recompute(s, p, now)
    return [p.label for p in stale[:limit]]


def indicators(s: Session, chosen: Period, department_id: int | None, with_people: bool = True) -> dict:
    """The indicators per department (with people) and, for viewers of every department, the platform."""
    result, computed_at = figures(s, chosen, with_people)
    departments = result["departments"]
    if department_id is not None:
        code = s.scalar(select(Department.code).where(Department.id == department_id))
        departments = {code: departments[code]} if code in departments else {}
    return {"period": period_json(chosen), "computed_at": computed_at.isoformat(), "departments": departments,
            "platform": result["platform"] if department_id is None else None}


def trend(s: Session, grain: str, count: int, department_id: int | None) -> dict:
    """Each indicator per department (and the platform) for the last `count` months or quarters."""
    periods = recent(grain, count)
    series: dict[str, dict[str, list]] = {name: {} for name in INDICATORS}
    for i, p in enumerate(periods):
        result = indicators(s, p, department_id, with_people=False)
        rows = dict(result["departments"])
        if result["platform"] is not None:
            rows["*"] = result["platform"]
        for code, figures in rows.items():
            for name in INDICATORS:
                series[name].setdefault(code, [None] * len(periods))[i] = figures[name]
    return {"grain": grain, "periods": [period_json(p) for p in periods], "series": series}


def table_rows(result: dict) -> list[dict]:
    """One row per department, then one per person: the export's and the page table's rows."""
    rows = []
    for code, d in result["departments"].items():
        rows.append({"level": "department", "department": code, "name": d["name"], "username": "",
                     **{k: d[k] for k in SHOWN}, "active_users": d["active_users"], "submissions": d["submissions"],
                     "due_tasks": d["due_tasks"], "late_tasks": d["late_tasks"] + d["overdue_open_tasks"],
                     "approval_decisions": d["approval_decisions"], "security_incidents": d["security_incidents"],
                     "reference_score": d["reference_score"]})
    for code, d in result["departments"].items():
        for username, p in sorted(d["people"].items()):
            rows.append({"level": "person", "department": code, "name": p["full_name"], "username": username,
                         "usage_rate": 1.0 if p["used"] else 0.0, "timeliness_rate": p["timeliness_rate"],
                         "approval_pass_rate": p["approval_pass_rate"], "first_pass_rate": p["first_pass_rate"],
                         "submissions": p["submissions"], "security_incident_rate": None,
                         "active_users": 1, "due_tasks": p["due_tasks"],
                         "late_tasks": p["late_tasks"] + p["overdue_open_tasks"],
                         "approval_decisions": p["approval_decisions"],
                         "security_incidents": p["security_incidents"], "reference_score": None})
    return rows


# -- drill-down: the records behind a number ----------------------------------------------------

DRILLS = ("people", "due", "late", "submissions", "returned", "incidents")


def records(s: Session, kind: str, chosen: Period, department_id: int | None, limit: int = 500) -> list[dict]:
    """The records behind each figure (docs/indicators.md): people: the population with whether
    and how each used the platform (usage); due: the tasks with a due date completed in the period,
    on time or late (timeliness); late: those counted late, and those flagged and still open at the
    end; submissions: the requests decided, passed and passed first time (approval); returned: the
    decisions 'return' and 'reject'; incidents: every security incident, of each kind."""
    start, end = chosen.start.astimezone(UTC), chosen.end.astimezone(UTC)
    if kind == "people":
        return _people_records(s, chosen, department_id)[:limit]
    if kind == "due":
        return _due_records(s, start, end, department_id, limit)
    if kind == "submissions":
        return _submission_records(s, start, end, department_id)[:limit]
    if kind == "incidents":
        return _incident_records(s, start, end, department_id)[:limit]
    if kind == "late":
        flagged = (select(AuditEvent.object_id.label("task_id"), AuditEvent.at.label("flagged_at"))
                   .where(AuditEvent.action == "task_overdue", AuditEvent.object_type == "task", AuditEvent.at < end)
                   .subquery())
        query = (select(InstanceStep.instance_id, InstanceStep.element_id, InstanceStep.name, InstanceStep.task_id,
                        InstanceStep.completed_at, flagged.c.flagged_at, User.username, ProcessInstance.process_key)
                 .join(flagged, flagged.c.task_id == InstanceStep.task_id)
                 .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
                 .outerjoin(User, User.id == InstanceStep.user_id)
                 .where(InstanceStep.completed_at >= start, InstanceStep.completed_at < end,
                        flagged.c.flagged_at <= InstanceStep.completed_at))
        if department_id is not None:
            query = query.where(User.department_id == department_id)
        done = [{"instance_id": r[0], "element_id": r[1], "name": r[2], "task_id": r[3],
                 "completed_at": r[4].isoformat(), "flagged_at": r[5].isoformat(), "who": r[6], "process_key": r[7]}
                for r in s.execute(query.order_by(InstanceStep.completed_at).limit(limit))]
        done = list({r["task_id"]: r for r in done}.values())  # a task flagged twice is one record
        still_open = (select(AuditEvent.object_id, AuditEvent.at, AuditEvent.detail)
                      .where(AuditEvent.action == "task_overdue", AuditEvent.object_type == "task",
                             AuditEvent.at >= start, AuditEvent.at < end)
                      .where(~select(InstanceStep.id).where(InstanceStep.task_id == AuditEvent.object_id,
                                                            InstanceStep.completed_at < end).exists()))
        if department_id is not None:
            notified = (select(Notification.task_id).join(User, User.id == Notification.user_id)
                        .where(Notification.kind == "overdue", User.department_id == department_id))
            still_open = still_open.where(AuditEvent.object_id.in_(notified))
        opened = [{"instance_id": (d or {}).get("instance"), "element_id": (d or {}).get("element"), "name": None,
                   "task_id": task_id, "completed_at": None, "flagged_at": at.isoformat(), "who": None,
                   "process_key": None}
                  for task_id, at, d in s.execute(still_open.order_by(AuditEvent.at).limit(limit))]
        return done + opened
    if kind == "returned":
        query = (select(InstanceStep.instance_id, InstanceStep.element_id, InstanceStep.name, InstanceStep.task_id,
                        InstanceStep.completed_at, InstanceStep.decision, User.username, ProcessInstance.process_key)
                 .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
                 .outerjoin(User, User.id == ProcessInstance.started_by)
                 .where(InstanceStep.decision.in_(("return", "reject")),
                        InstanceStep.completed_at >= start, InstanceStep.completed_at < end))
        if department_id is not None:
            query = query.where(ProcessInstance.department_id == department_id)
        return [{"instance_id": r[0], "element_id": r[1], "name": r[2], "task_id": r[3],
                 "completed_at": r[4].isoformat(), "decision": r[5], "who": r[6], "process_key": r[7]}
                for r in s.execute(query.order_by(InstanceStep.completed_at).limit(limit))]
    message = _("'%(value)s' is not one of: %(choices)s.", value=kind, choices=", ".join(DRILLS))
    raise Invalid(message, [{"field": "kind", "message": message}])


def _aware(value) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _names(s: Session, user_ids) -> dict[int, str]:
    ids = [i for i in set(user_ids) if i is not None]
    return dict(s.execute(select(User.id, User.username).where(User.id.in_(ids))).all()) if ids else {}


def _people_records(s: Session, chosen: Period, department_id: int | None) -> list[dict]:
    """The usage figure's people, from the same computation (the snapshot) as the figure."""
    result, _at = figures(s, chosen)
    code = s.scalar(select(Department.code).where(Department.id == department_id)) if department_id else None
    out = []
    for dept, d in sorted(result["departments"].items()):
        if code is not None and dept != code:
            continue
        for username, p in sorted(d["people"].items()):
            out.append({"who": username, "name": p["full_name"], "department": dept, "used": p["used"],
                        "tasks_completed": p["tasks_completed"], "instances_started": p["instances_started"],
                        "documents_filed": p.get("documents_filed", 0)})
    return out


def _due_records(s: Session, start: datetime, end: datetime, department_id: int | None, limit: int) -> list[dict]:
    """Tasks with a due date completed in the period, each on time or late (§3 a); the ones flagged
    and still open at the end (§3 b) are in `late`."""
    flagged = (select(AuditEvent.object_id.label("task_id"), func.min(AuditEvent.at).label("at"))
               .where(AuditEvent.action == "task_overdue", AuditEvent.object_type == "task", AuditEvent.at < end)
               .group_by(AuditEvent.object_id).subquery())
    query = (select(InstanceStep.instance_id, InstanceStep.element_id, InstanceStep.name, InstanceStep.task_id,
                    InstanceStep.completed_at, flagged.c.at, User.username, ProcessInstance.process_key,
                    ProcessDefinition.deployment_id)
             .join(ProcessInstance, ProcessInstance.id == InstanceStep.instance_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
             .join(User, User.id == InstanceStep.user_id)
             .outerjoin(flagged, flagged.c.task_id == InstanceStep.task_id)
             .where(InstanceStep.completed_at >= start, InstanceStep.completed_at < end))
    if department_id is not None:
        query = query.where(User.department_id == department_id)
    rows = s.execute(query.order_by(InstanceStep.completed_at)).all()
    due = due_elements(s, {r.deployment_id for r in rows})
    out = []
    for r in rows:
        if (r.deployment_id, r.element_id) not in due:
            continue
        late = r[5] is not None and r[5] <= r.completed_at
        out.append({"instance_id": r.instance_id, "element_id": r.element_id, "name": r.name, "task_id": r.task_id,
                    "completed_at": r.completed_at.isoformat(), "flagged_at": r[5].isoformat() if late else None,
                    "who": r.username, "process_key": r.process_key, "on_time": not late})
        if len(out) >= limit:
            break
    return out


def _submission_records(s: Session, start: datetime, end: datetime, department_id: int | None) -> list[dict]:
    subs = [x for x in submissions(s, start, end) if department_id is None or x.department_id == department_id]
    names = _names(s, [x.user_id for x in subs])
    return [{"instance_id": x.instance_id, "process_key": x.process_key, "who": names.get(x.user_id),
             "completed_at": x.decided_at.isoformat(), "decision": x.decisions[-1], "decisions": x.decisions,
             "passed": x.passed, "first_pass": x.first_pass} for x in sorted(subs, key=lambda x: x.decided_at)]


def _incident_records(s: Session, start: datetime, end: datetime, department_id: int | None) -> list[dict]:
    """Every security incident of the period: sign-in failure bursts, sandbox refusals, security
    procedures, security faults and findings (§5)."""
    out = []
    for record in security_records(s, start, end):
        if department_id is None or record.department_id == department_id:
            out.append({"kind": record.kind, "instance_id": record.instance_id, "process_key": record.process_key,
                        "user_id": record.user_id, "completed_at": record.at.isoformat(), "message": record.summary,
                        "element_id": None, "name": None, "task_id": None})
    for username, day, user_department in login_bursts(s, start, end):
        if department_id is None or user_department == department_id:
            out.append({"kind": "login_burst", "instance_id": None, "process_key": None, "user_id": None,
                        "who": username, "completed_at": str(day), "message": None, "element_id": None,
                        "name": None, "task_id": None})
    query = select(ProcessInstance.id, ProcessInstance.process_key, ProcessInstance.incidents, ProcessInstance.started_by
                   ).where(ProcessInstance.started_at < end)
    if department_id is not None:
        query = query.where(ProcessInstance.department_id == department_id)
    # Incidents are a JSON list on the instance; only instances with one are worth reading.
    refused = cast(ProcessInstance.incidents, String).like('%"forbidden"%')
    for instance_id, key, incidents, started_by in s.execute(query.where(refused).order_by(ProcessInstance.id)):
        for incident in incidents or []:
            at = _aware(incident.get("at"))
            if incident.get("kind") in SECURITY_INCIDENT_KINDS and at is not None and start <= at < end:
                out.append({"kind": "refusal", "instance_id": instance_id, "element_id": incident.get("element"),
                            "name": None, "task_id": None, "completed_at": at.isoformat(), "user_id": started_by,
                            "process_key": key, "message": incident.get("message")})
    names = _names(s, [r["user_id"] for r in out])
    for r in out:
        r.setdefault("who", names.get(r.pop("user_id")))
        r.pop("user_id", None)
    return sorted(out, key=lambda r: r["completed_at"])
