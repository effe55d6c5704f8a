"""Timer start events (e.g. a quarterly assessment, `R/2026-01-01T00:00:00+08:00/P3M`).

SpiffWorkflow would keep one instance waiting at a cycle start event and grow a new path in it
each period. A platform wants one instance per period instead, so the service schedules timer
starts itself from these functions and, when one is due, starts an instance and fires its start
event at once (`fire_start_event`).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

from . import clock
from .loader import ParsedProcess


@dataclass(frozen=True)
class StartTimer:
    element_id: str
    kind: str  # cycle | date | duration
    expression: str


def start_timers(process: ParsedProcess) -> list[StartTimer]:
    timers = []
    for spec in process.spec.task_specs.values():
        definition = getattr(spec, "event_definition", None)
        if not isinstance(spec, StartEvent) or not isinstance(definition, TimerEventDefinition):
            continue
        try:
            value = ast.literal_eval(definition.expression.strip())
        except (ValueError, SyntaxError):
            continue  # an expression over data makes no sense before an instance exists
        if not isinstance(value, str):
            continue
        kind = ("cycle" if isinstance(definition, CycleTimerEventDefinition)
                else "date" if isinstance(definition, TimeDateEventDefinition) else "duration")
        timers.append(StartTimer(spec.bpmn_id, kind, value))
    return timers


def _add(duration: str, start: datetime) -> datetime:
    parsed = TimerEventDefinition.parse_iso_duration(duration)
    return start + TimerEventDefinition.get_timedelta_from_start(parsed, start)


def _cycle_parts(expression: str) -> tuple[int, datetime | None, str]:
    parts = expression.upper().strip().lstrip("R").split("/")
    cycles = int(parts[0]) if parts[0] else -1
    if len(parts) == 3:
        # Keep the anchor's own offset: "every 3 months from 1 January, Beijing time" must add
        # calendar months in Beijing time, not in UTC (where 1 January 00:00 is still December).
        anchor = datetime.fromisoformat(parts[1])
        if anchor.tzinfo is None:
            anchor = anchor.replace(tzinfo=UTC)
        return cycles, anchor, parts[2]
    return cycles, None, parts[1]


def first_fire(timer: StartTimer, armed_at: datetime | None = None) -> datetime | None:
    armed_at = armed_at or clock.now()
    if timer.kind == "date":
        return TimerEventDefinition.get_datetime(timer.expression)
    if timer.kind == "duration":
        return _add(timer.expression, armed_at)
    cycles, start, period = _cycle_parts(timer.expression)
    if cycles == 0:
        return None
    if start is None:
        return _add(period, armed_at)  # as SpiffWorkflow: the first fire is one period after arming
    fire, n = start, 0
    while fire <= armed_at:  # skip periods that passed before deployment
        fire, n = _add(period, fire), n + 1
        if cycles > 0 and n >= cycles:
            return None
    return fire


def next_fire(timer: StartTimer, previous: datetime, fired: int) -> datetime | None:
    """The fire after `previous`, or None when the timer is spent (`fired` = fires so far)."""
    if timer.kind != "cycle":
        return None
    cycles, anchor, period = _cycle_parts(timer.expression)
    if cycles > 0 and fired >= cycles:
        return None
    if anchor is None:
        return _add(period, previous)
    fire = anchor
    while fire <= previous:
        fire = _add(period, fire)
    return fire
