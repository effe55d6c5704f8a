"""Timer values held to the platform's horizon before SpiffWorkflow computes with them (issue 13).

SpiffWorkflow adds a duration's years and months one month at a time
(`TimerEventDefinition.get_timedelta_from_start`), so ``"P99999999Y"`` keeps a request busy for
minutes. No procedure waits a century: durations, dates and the parts of a cycle are refused past
`HORIZON_YEARS` from now, using only SpiffWorkflow's parsers (which do not loop) before its
calendar arithmetic (which does). The same check runs at deploy on literals
(engine/validation.py), at run time on the value of every timer expression (the script engine),
for timer start events (engine/timers.py) and for a user task's `due` property (`due_moment`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)

from . import clock
from .errors import ScriptError, ScriptLimit

__all__ = ["HORIZON_YEARS", "check_timer_result", "check_timer_value", "due_moment", "parse_duration"]

HORIZON_YEARS = 100
_DAYS_PER = {"years": 366, "months": 31, "weeks": 7, "days": 1, "hours": 1 / 24, "minutes": 1 / 1440,
             "seconds": 1 / 86400}
_HORIZON_DAYS = HORIZON_YEARS * 366


class TimerBeyondHorizon(ScriptLimit, ValueError):
    """A timer value SpiffWorkflow could parse, but that lies past the horizon.

    Also a ValueError, so code that treats a bad timer value as "no date" treats this one alike."""


class TimerNotIso(ScriptError, ValueError):
    """A timer value that is not an ISO 8601 duration, date-time or cycle."""


def parse_duration(text: str) -> dict:
    """SpiffWorkflow's parse of an ISO 8601 duration, refused past the horizon."""
    try:
        parsed = TimerEventDefinition.parse_iso_duration(text)
    except Exception as err:  # noqa: BLE001 - SpiffWorkflow raises a bare Exception('Invalid duration')
        raise TimerNotIso(f"timer value {text!r} is not an ISO 8601 duration (e.g. 'PT48H')") from err
    days = sum(_DAYS_PER[unit] * amount for unit, amount in parsed.items())
    if days > _HORIZON_DAYS:
        raise TimerBeyondHorizon(f"timer value {text!r} lies more than {HORIZON_YEARS} years ahead")
    return parsed


def _parse_moment(text: str, now: datetime) -> datetime:
    try:
        moment = TimerEventDefinition.parse_time_or_duration(text)
    except Exception as err:  # noqa: BLE001 - ValueError, AttributeError (no week match), OverflowError
        raise TimerNotIso(f"timer value {text!r} is not an ISO 8601 date and time") from err
    if not isinstance(moment, datetime):
        raise TimerNotIso(f"timer value {text!r} is not an ISO 8601 date and time")
    if moment.year > now.year + HORIZON_YEARS:
        raise TimerBeyondHorizon(f"timer value {text!r} lies more than {HORIZON_YEARS} years ahead")
    return moment


def _check_part(text: str, now: datetime) -> None:
    if text.upper().startswith("P"):
        parse_duration(text)
    else:
        _parse_moment(text, now)


def check_timer_value(kind: str, value, now: datetime | None = None) -> None:
    """Raise TimerBeyondHorizon or TimerNotIso unless `value` is a usable timer value of `kind`
    ('duration', 'date' or 'cycle'). Only parses; never does calendar arithmetic."""
    now = now or clock.now()
    if not isinstance(value, str):
        raise TimerNotIso(f"a timer value must be an ISO 8601 text, not {type(value).__name__}")
    text = value.strip()
    if kind == "duration":
        parse_duration(text)
    elif kind == "date":
        _parse_moment(text, now)
    else:
        # As SpiffWorkflow splits it: R[n]/start/duration, R[n]/duration/end, R[n]/duration.
        parts = text.upper().replace("--", "/").strip("R").split("/")
        if len(parts) not in (2, 3):
            raise TimerNotIso(f"timer value {text!r} is not an ISO 8601 cycle (e.g. 'R3/PT1H')")
        if parts[0] and not parts[0].isdigit():
            raise TimerNotIso(f"timer value {text!r} is not an ISO 8601 cycle (e.g. 'R3/PT1H')")
        for part in parts[1:]:
            _check_part(part, now)


def _kind(definition) -> str | None:
    if isinstance(definition, CycleTimerEventDefinition):
        return "cycle"
    if isinstance(definition, TimeDateEventDefinition):
        return "date"
    if isinstance(definition, DurationTimerEventDefinition):
        return "duration"
    return None


def check_timer_result(task_spec, expression: str, value) -> None:
    """Called with every expression value: when `expression` is one of the task's timers, hold
    its value to the horizon (SpiffWorkflow parses it right after, and says itself what is wrong
    with a value that is not ISO 8601)."""
    definition = getattr(task_spec, "event_definition", None)
    if definition is None:
        return
    for candidate in [definition, *(getattr(definition, "event_definitions", None) or [])]:
        kind = _kind(candidate)
        if kind is not None and candidate.expression == expression:
            try:
                check_timer_value(kind, value)
            except TimerNotIso:
                pass
            return


def due_moment(value, now: datetime | None = None) -> datetime:
    """When a task with `due` = `value` falls due: an ISO 8601 duration counted from `now`, or an
    ISO 8601 date-time. Raises ValueError (TimerNotIso, TimerBeyondHorizon) for anything else."""
    now = now or clock.now()
    if not isinstance(value, str):
        raise TimerNotIso(f"a due date must be an ISO 8601 text, not {type(value).__name__}")
    text = value.strip()
    if text.upper().startswith("P"):
        parsed = parse_duration(text)
        return now + TimerEventDefinition.get_timedelta_from_start(parsed, now)
    # SpiffWorkflow's parser already answers in UTC (a naive text is read as server time, pitfall P3).
    return _parse_moment(text, now)


def fixed_length(parsed: dict) -> timedelta | None:
    """The length of a parsed duration without years or months (those depend on the calendar)."""
    if parsed.get("years") or parsed.get("months"):
        return None
    return timedelta(**{unit: amount for unit, amount in parsed.items() if unit not in ("years", "months")})
