"""Periodic process evaluation (R-WF-4 "定期对工作流程进行评估和优化", issue 18): once a month the job
table writes, for every process that had work done in the month before, an evaluation — per step
how often it ran, how long it took (median, p90), how often it was overdue when it had a deadline,
returns and rework loops, each version's figures side by side — and suggestions drawn from them
("step X overdue in 40% of cases"). Designers read it in the studio beside the model, supervisors
on the optimisation page and through the API.

The figures are analytics.element_stats and the timeliness records (one way to count); an
evaluation is stored once per process and month, so the job may run daily and after an outage.
Suggestions are stored as codes and numbers and put into words when read, in the reader's language.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, timedelta

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock

from . import analytics
from .models import InstanceStep, ProcessDefinition, ProcessEvaluation, ScheduledJob
from .scheduler import DAILY_JOBS, next_daily

OVERDUE_SHARE = 0.2  # a step overdue in at least this share of its cases is worth a look
REWORK_SHARE = 0.2
MIN_CASES = 3


def _keys_with_work(s: Session, period: analytics.Period) -> list[str]:
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    return sorted(set(s.scalars(
        select(ProcessDefinition.key).join(InstanceStep, InstanceStep.definition_id == ProcessDefinition.id)
        .where(InstanceStep.completed_at >= start, InstanceStep.completed_at < end).distinct())))


def _timeliness(s: Session, period: analytics.Period) -> dict[tuple[str, str], list[int]]:
    """(process, step) → [completed with a deadline, of those late]."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in analytics._due_records(s, start, end, None, 1_000_000):
        counts = out[(r["process_key"], r["element_id"])]
        counts[0] += 1
        counts[1] += not r["on_time"]
    return out


def evaluate(s: Session, key: str, period: analytics.Period, timeliness: dict | None = None) -> dict:
    """The evaluation of one process for one period (not stored)."""
    stats = analytics.element_stats(s, key, None, period, None)
    timeliness = _timeliness(s, period) if timeliness is None else timeliness
    steps, suggestions = [], []
    for element_id, e in stats["elements"].items():
        st = e["stats"]
        due, late = timeliness.get((key, element_id), [0, 0])
        rate = round(late / due, 3) if due else None
        steps.append({"element_id": element_id, "name": e["name"], "count": st["count"], "median_s": st["median"],
                      "p90_s": st["p90"], "returns": st["returns"], "reentries": st["reentries"],
                      "with_deadline": due, "late": late, "overdue_rate": rate,
                      "versions": {v: {"count": x["count"], "median_s": x["median"]} for v, x in e["versions"].items()}})
        if due >= MIN_CASES and rate is not None and rate >= OVERDUE_SHARE:
            suggestions.append({"code": "overdue", "element_id": element_id, "name": e["name"], "share": rate,
                                "cases": due})
        loops = st["returns"] + st["reentries"]
        if st["count"] >= MIN_CASES and loops / st["count"] >= REWORK_SHARE:
            suggestions.append({"code": "rework", "element_id": element_id, "name": e["name"],
                                "share": round(loops / st["count"], 3), "cases": st["count"]})
        slower = _slower_version(e["versions"])
        if slower:
            suggestions.append({"code": "version", "element_id": element_id, "name": e["name"], **slower})
    if stats["bottlenecks"]:
        first = stats["elements"][stats["bottlenecks"][0]]
        if first["stats"]["count"] >= MIN_CASES:
            suggestions.append({"code": "bottleneck", "element_id": stats["bottlenecks"][0], "name": first["name"],
                                "median_s": first["stats"]["median"], "cases": first["stats"]["count"]})
    return {"process_key": key, "period": stats["period"], "versions": stats["versions"],
            "steps": sorted(steps, key=lambda x: -(x["median_s"] or 0)), "suggestions": suggestions}


def _slower_version(versions: dict) -> dict | None:
    """The newest version against the one before, when a step became markedly slower (half again)."""
    ran = [(int(v), x) for v, x in versions.items() if x["count"] >= MIN_CASES and x["median"]]
    if len(ran) < 2:
        return None
    (old, before), (new, after) = sorted(ran)[-2:]
    if after["median"] >= 1.5 * before["median"]:
        return {"old": old, "new": new, "old_median_s": before["median"], "new_median_s": after["median"]}
    return None


def run(s: Session, period: analytics.Period | None = None, job_id: int | None = None) -> list[ProcessEvaluation]:
    """Evaluate every process with work in `period` (default: last month) not yet evaluated."""
    period = period or analytics.month_of(analytics.month_of(clock.now()).start - timedelta(microseconds=1))
    done = set(s.scalars(select(ProcessEvaluation.process_key).where(ProcessEvaluation.period == period.label)))
    keys = [k for k in _keys_with_work(s, period) if k not in done]
    timeliness = _timeliness(s, period) if keys else {}
    made = []
    for key in keys:
        row = ProcessEvaluation(process_key=key, period=period.label, body=evaluate(s, key, period, timeliness),
                                job_id=job_id)
        s.add(row)
        made.append(row)
    s.flush()
    return made


def fire(s: Session, job: ScheduledJob) -> None:
    """The daily job (it finds last month evaluated on every day but the first it runs)."""
    job.due_at = next_daily(clock.now(), DAILY_JOBS["evaluation"][1])
    job.fired += 1
    run(s, job_id=job.id)


def latest(s: Session, key: str) -> ProcessEvaluation | None:
    return s.scalar(select(ProcessEvaluation).where(ProcessEvaluation.process_key == key)
                    .order_by(ProcessEvaluation.period.desc()).limit(1))


def suggestion_text(item: dict) -> str:
    """A suggestion in the reader's language."""
    name = item.get("name") or item.get("element_id")
    if item["code"] == "overdue":
        return _("Step “%(name)s” was overdue in %(share)s%% of its %(cases)s cases: give it more time or "
                 "more people, or remind earlier.", name=name, share=round(100 * item["share"]), cases=item["cases"])
    if item["code"] == "rework":
        return _("Step “%(name)s” was sent back or done again in %(share)s%% of %(cases)s cases: make what "
                 "it needs clearer in its form or instructions.", name=name, share=round(100 * item["share"]),
                 cases=item["cases"])
    if item["code"] == "version":
        return _("Step “%(name)s” takes longer in version %(new)s than in version %(old)s (median %(after)s "
                 "against %(before)s).", name=name, new=item["new"], old=item["old"],
                 after=analytics.duration_label(item["new_median_s"]),
                 before=analytics.duration_label(item["old_median_s"]))
    return _("Step “%(name)s” is the slowest (median %(median)s over %(cases)s cases).", name=name,
             median=analytics.duration_label(item["median_s"]), cases=item["cases"])


def shown(row: ProcessEvaluation) -> dict:
    """An evaluation as people read it: its figures, and its suggestions in words."""
    return dict(row.body, period_label=row.period, created_at=row.created_at,
                steps=[dict(st, median_label=analytics.duration_label(st["median_s"])) for st in row.body.get("steps", [])],
                suggestions=[dict(item, text=suggestion_text(item)) for item in row.body.get("suggestions", [])])


def history(s: Session, key: str, limit: int = 12) -> list[ProcessEvaluation]:
    return list(s.scalars(select(ProcessEvaluation).where(ProcessEvaluation.process_key == key)
                          .order_by(ProcessEvaluation.period.desc()).limit(limit)))
