"""Shared fixtures for the engine tests: no Flask app, no database, just the engine package."""
from __future__ import annotations

import datetime as dt

import pytest

from engine import clock


@pytest.fixture
def frozen_clock():
    """A FrozenClock installed as the engine's clock, removed again after the test.

    engine/clock.py replaces the `datetime` SpiffWorkflow's timer module reads, so a clock left
    behind would move every later test's timers too."""
    frozen = clock.FrozenClock(dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC))
    clock.set_provider(frozen)
    try:
        yield frozen
    finally:
        clock.set_provider(None)
