"""Timer start events (e.g. a quarterly assessment, `R/2026-01-01T00:00:00+08:00/P3M`).

SpiffWorkflow would keep one instance waiting at a cycle start event and grow a new path in it
each period. A platform wants one instance per period instead, so the service schedules timer
starts itself from these functions and, when one is due, starts an instance and fires its start
event at once (`fire_start_event`).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

from . import clock
from .horizon import due_moment, fixed_length, parse_duration
from .loader import ParsedProcess

__all__ = ["StartTimer", "due_moment", "first_fire", "next_fire", "start_timers"]


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
    # Held to the horizon first: SpiffWorkflow adds years and months one month at a time.
    parsed = parse_duration(duration)
    return start + TimerEventDefinition.get_timedelta_from_start(parsed, start)


def _first_after(anchor: datetime, period: str, moment: datetime) -> tuple[datetime, int]:
    """The first of anchor, anchor + period, anchor + 2 periods, ... after `moment`, and its
    number. A fixed-length period jumps there at once: an anchor in year 1 with a period of a
    second would otherwise take billions of steps."""
    fire, n = anchor, 0
    step = fixed_length(parse_duration(period))
    if step is not None and step > timedelta(0) and fire <= moment:
        skip = (moment - fire) // step
        fire, n = fire + skip * step, skip
    while fire <= moment:
        later = _add(period, fire)
        if later <= fire:
            raise ValueError(f"timer period {period!r} does not advance")
        fire, n = later, n + 1
    return fire, n


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
    fire, n = _first_after(start, period, armed_at)  # skip periods that passed before deployment
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
    return _first_after(anchor, period, previous)[0]
