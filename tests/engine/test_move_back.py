"""Moving the token back to an earlier step (admin action on a running instance, R-WF-3)."""
from __future__ import annotations

import pytest

from engine.errors import TaskNotFound
from engine.runtime import Instance
from tests.engine.builders import (
    bpmn,
    chain,
    end,
    load,
    reload,
    script,
    script_engine,
    start,
    timer_boundary,
    user,
)


def three_reviews():
    return load(bpmn("reviews", start(), user("draft"), user("check"), script("count", "rounds = rounds + 1"),
                     user("sign"), end(), chain("start", "draft", "check", "count", "sign", "end")))


def _at(instance) -> list[str]:
    return [t.element_id for t in instance.user_tasks()]


def test_move_back_reopens_the_earlier_user_task_and_drops_what_came_after():
    instance = Instance.start(three_reviews(), script_engine(), {"rounds": 0})
    instance.complete(instance.user_tasks()[0].id, {"text": "v1"})
    instance.complete(instance.user_tasks()[0].id, {"ok": True})
    instance = reload(instance)
    assert _at(instance) == ["sign"]
    # Only user tasks already passed are offered, nearest first; the script step is not.
    assert instance.earlier_steps() == [("check", "check"), ("draft", "draft")]

    draft_id = instance.move_back("draft")
    assert _at(instance) == ["draft"] and instance.user_tasks()[0].id == draft_id
    assert not instance.failed and instance.steps == []
    instance = reload(instance)
    assert _at(instance) == ["draft"] and instance.earlier_steps() == []

    # The process runs forward again from there, automatic steps included, with the data as it was
    # when the draft first opened (the first round's count is undone with the rest).
    instance.complete(instance.user_tasks()[0].id, {"text": "v2"})
    instance.complete(instance.user_tasks()[0].id, {"ok": True})
    sign = instance.user_tasks()[0]
    assert sign.element_id == "sign" and sign.data["text"] == "v2" and sign.data["rounds"] == 1


def test_move_back_refuses_an_element_not_passed_yet_or_not_a_user_task():
    instance = Instance.start(three_reviews(), script_engine(), {"rounds": 0})
    instance.complete(instance.user_tasks()[0].id, {})
    for element in ("sign", "count", "start", "nothing"):
        with pytest.raises(TaskNotFound):
            instance.move_back(element)
    assert _at(instance) == ["check"]


def test_move_back_from_an_incident_clears_it():
    process = load(bpmn("failing", start(), user("enter"), script("compute", "share = total / parts"),
                        user("check"), end(), chain("start", "enter", "compute", "check", "end")))
    instance = Instance.start(process, script_engine(), {"total": 10})
    instance.complete(instance.user_tasks()[0].id, {"parts": 0})
    assert instance.failed
    instance = reload(instance)
    instance.move_back("enter")
    assert not instance.failed and _at(instance) == ["enter"]
    instance.complete(instance.user_tasks()[0].id, {"parts": 5})
    assert instance.user_tasks()[0].data["share"] == 2


def test_move_back_re_arms_a_boundary_timer(frozen_clock):
    process = load(bpmn("timed", start(), user("draft"), user("review"), end(), end("late"),
                        timer_boundary("slow", "review", '"PT1H"'),
                        chain("start", "draft", "review", "end"), chain("slow", "late")))
    instance = Instance.start(process, script_engine())
    instance.complete(instance.user_tasks()[0].id, {})
    first_due = instance.next_timer_due()
    assert first_due is not None
    instance.move_back("draft")
    assert instance.next_timer_due() is None  # the review and its timer are gone
    frozen_clock.advance(minutes=30)
    instance.complete(instance.user_tasks()[0].id, {})
    assert instance.next_timer_due() > first_due
