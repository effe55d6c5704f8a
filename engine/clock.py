"""One injectable clock for the engine and the service.

SpiffWorkflow's timers read `datetime.now(timezone.utc)` from their own module; we replace that
module's `datetime` with a subclass whose `now()` asks our clock, so tests and an admin's
"advance time" move every timer consistently.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import time as _time
from collections.abc import Callable, Iterator

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _timer_module

_provider: Callable[[], _dt.datetime] | None = None
# A clock for the current thread (context) only: a scenario run inside a web request must not move
# the timers of every other request the process serves.
_local: contextvars.ContextVar[Callable[[], _dt.datetime] | None] = contextvars.ContextVar(
    "inkless_local_clock", default=None)


def now() -> _dt.datetime:
    """Current time, timezone-aware UTC."""
    local = _local.get()
    if local is not None:
        return local()
    if _provider is not None:
        return _provider()
    return _dt.datetime.now(_dt.UTC)


def set_provider(provider: Callable[[], _dt.datetime] | None) -> None:
    """Install a clock (None restores real time). Providers must return aware datetimes."""
    global _provider
    _provider = provider


@contextlib.contextmanager
def local(provider: Callable[[], _dt.datetime]) -> Iterator[None]:
    """Use `provider` as the clock inside this block, in this thread (context) only."""
    token = _local.set(provider)
    try:
        yield
    finally:
        _local.reset(token)


class _ClockedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        current = now()
        # Like datetime.now(): aware in `tz`, or naive *local* time when no tz is given.
        return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)


_timer_module.datetime = _ClockedDatetime


class FrozenClock:
    """A clock for tests: starts at `start` and moves only when told."""

    def __init__(self, start: _dt.datetime | None = None):
        if start is not None and start.tzinfo is None:
            # A naive start would make every timer comparison in SpiffWorkflow raise TypeError.
            raise ValueError("FrozenClock needs a timezone-aware start")
        self.current = start or _dt.datetime.now(_dt.UTC)

    def __call__(self) -> _dt.datetime:
        return self.current

    def advance(self, **delta) -> _dt.datetime:
        self.current += _dt.timedelta(**delta)
        return self.current


class TickingClock:
    """A clock that starts at `start` and runs at real speed: a whole process (a test server, a
    demo) lives at another moment without freezing time, so timeouts and orderings still behave."""

    def __init__(self, start: _dt.datetime):
        if start.tzinfo is None:
            raise ValueError("TickingClock needs a timezone-aware start")
        self.start = start
        self._origin = _time.monotonic()

    def __call__(self) -> _dt.datetime:
        return self.start + _dt.timedelta(seconds=_time.monotonic() - self._origin)
