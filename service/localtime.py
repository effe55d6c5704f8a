"""The platform's local time: Beijing time (UTC+8, no daylight saving), in which the regulation's
days, quarters, deadlines and nightly jobs are counted. Stored times stay UTC."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

PLATFORM_TZ = timezone(timedelta(hours=8), "CST")


def end_of_day_after(now: datetime, days: int) -> str:
    """23:59:59 Beijing time `days` days after `now`, as ISO with its offset (a rectification's deadline)."""
    day = now.astimezone(PLATFORM_TZ).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=PLATFORM_TZ).isoformat()


def parse_moment(text: object) -> datetime | None:
    """An ISO 8601 date and time with its offset (what a `date-time` field holds), else None."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def to_picker(text: object) -> str:
    """A stored moment as a native picker (`datetime-local`) shows it: platform time, to the minute."""
    moment = parse_moment(text)
    return moment.astimezone(PLATFORM_TZ).strftime("%Y-%m-%dT%H:%M") if moment else ("" if text is None else str(text))


def from_picker(text: str) -> str:
    """What a `datetime-local` picker sends (no offset: it is platform time) as ISO with +08:00;
    anything else is kept as typed, so the validator names the field."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PLATFORM_TZ)
    return moment.isoformat(timespec="seconds")
