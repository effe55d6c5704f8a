"""The platform's local time: Beijing time (UTC+8, no daylight saving), in which the regulation's
days, quarters, deadlines and nightly jobs are counted. Stored times stay UTC."""
from __future__ import annotations

from datetime import timedelta, timezone

PLATFORM_TZ = timezone(timedelta(hours=8), "CST")
