"""Running instances: incidents instead of exceptions, timers, messages, user tasks, steps."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from SpiffWorkflow.util.task import TaskState

from engine.errors import Incident, MessageNotCaught, TaskNotFound, TaskNotReady
from engine.runtime import Instance
from tests.engine.builders import (
    bpmn,
    chain,
    end,
    flow,
    load,
    load_unchecked,
    message,
    message_catch,
    ready,
    reload,
    script,
    script_engine,
    service,
    start,
    timer_boundary,
    timer_catch,
    user,
    xor,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bpmn"


def assert_recorded(instance, element: str, kind: str | None = None) -> Incident:
    """The instance failed at `element`, says so, and survives a round trip in that state."""
    assert instance.failed
    assert instance.incidents, "no incident recorded"
    incident = instance.incidents[-1]
    assert incident.element == element, incident
    assert incident.message and "Traceback" not in incident.message
    if kind:
        assert incident.kind == kind, incident
    assert {"element_id": element, "state": "ERROR"} in instance.active_elements()
    again = reload(instance)
    assert again.failed
    return incident


# -- incidents ------------------------------------------------------------------------------------

def divide_process():
    return load(bpmn("divide", start(), user("enter"), script("compute", "share = total / parts"), user("check"),
                     end(), chain("start", "enter", "compute", "check", "end")))


def test_script_error_becomes_an_incident_and_retry_reruns_it():
    instance = Instance.start(divide_process(), script_engine(), {"total": 10})
    step = instance.complete(ready(instance, "enter").id, {"parts": 0})
    assert step.element_id == "enter"
    incident = assert_recorded(instance, "compute", kind="script")
    assert "ZeroDivisionError" in incident.message and incident.line == 1
    assert [s.element_id for s in instance.steps] == ["start", "enter"]

    instance = reload(instance)
    instance.retry()  # nothing fixed: fails again, same place
    assert_recorded(instance, "compute")

    instance = reload(instance)
    instance.retry({"parts": 4})
    assert not instance.failed and instance.incidents == []
    assert [s.element_id for s in instance.steps] == ["compute"]
    assert ready(instance, "check").data["share"] == 2.5


@pytest.mark.parametrize(("fixture", "element", "words"), [
    ("script_escape.bpmn", "escape_import", "import"),
    ("dunder_escape.bpmn", "escape_dunder", "_"),
])
def test_sandbox_refusal_is_an_incident(fixture, element, words):
    """The validator refuses these; an instance of an unvalidated (older) deployment must not run them."""
    xml = (FIXTURES / fixture).read_text(encoding="utf-8")
    process = load_unchecked(xml, fixture.removesuffix(".bpmn"))
    instance = Instance.start(process, script_engine(), {})
    instance.complete(instance.user_tasks()[0].id, {})
    incident = assert_recorded(instance, element, kind="forbidden")
    assert words in incident.message
    assert "pid" not in instance.data and "x" not in ready_or_error_data(instance, element)


def ready_or_error_data(instance, element):
    (task,) = [t for t in instance.workflow.get_tasks(state=TaskState.ERROR) if t.task_spec.bpmn_id == element]
    return task.data


def test_import_at_run_time_is_refused():
    xml = bpmn("imp", start(), script("sneaky", "import os\npid = os.getpid()"), end(), chain("start", "sneaky", "end"))
    instance = Instance.start(load_unchecked(xml, "imp"), script_engine(), {})
    incident = assert_recorded(instance, "sneaky", kind="forbidden")
    assert "import" in incident.message


def test_endless_script_times_out():
    xml = bpmn("spin", start(), script("forever", "while True:\n    pass"), end(), chain("start", "forever", "end"))
    instance = Instance.start(load(xml), script_engine(time_limit=0.2), {})
    assert_recorded(instance, "forever", kind="timeout")


def gateway_process():
    return load(bpmn("route", start(), xor("size", default="f_small"), user("big"), user("small"), end(),
                     flow("start", "size"), flow("size", "big", "amount > 1000", fid="f_big"),
                     flow("size", "small", fid="f_small"), chain("big", "end"), chain("small", "end")))


def test_gateway_condition_error_is_an_incident():
    instance = Instance.start(gateway_process(), script_engine(), {})
    incident = assert_recorded(instance, "size", kind="script")
    assert "amount" in incident.message
    instance = reload(instance)
    instance.retry({"amount": 5000})
    assert [t.element_id for t in instance.user_tasks()] == ["big"]


def test_failing_post_script_leaves_the_task_in_error():
    xml = bpmn("post", start(), user("fill", post="ratio = 1 / count"), end(), chain("start", "fill", "end"))
    instance = Instance.start(load(xml), script_engine(), {})
    task = ready(instance, "fill")
    step = instance.complete(task.id, {"count": 0})
    assert step.element_id == "fill" and step.task_id == task.id
    assert "fill" not in [s.element_id for s in instance.steps]  # it did not complete
    incident = assert_recorded(instance, "fill")
    assert "Post-Script" in incident.message
    instance = reload(instance)
    instance.retry()
    # A reset user task waits for a new submission.
    assert ready(instance, "fill").id == task.id
    instance.complete(task.id, {"count": 2})
    assert instance.completed and instance.data["ratio"] == 0.5


def test_failing_pre_script_is_an_incident():
    xml = bpmn("pre", start(), user("fill", pre="greeting = 'hi ' + name"), end(), chain("start", "fill", "end"))
    instance = Instance.start(load(xml), script_engine(), {})
    assert_recorded(instance, "fill")
    assert instance.user_tasks() == []
    instance.retry({"name": "Li"})
    assert ready(instance, "fill").data["greeting"] == "hi Li"


def test_failing_service_is_an_incident_with_its_own_message():
    def create_account(params, data):
        raise RuntimeError(f"login {params['login']} is taken")

    xml = bpmn("svc", start(), service("make", "create_account", {"login": "login"}, result="account"), end(),
               chain("start", "make", "end"))
    process = load(xml, services={"create_account"})
    instance = Instance.start(process, script_engine(services={"create_account": create_account}), {"login": "li"})
    incident = assert_recorded(instance, "make")
    assert "login li is taken" in incident.message and "'script'" not in incident.message

    instance = Instance.load(process, instance.dumps(), script_engine(
        services={"create_account": lambda params, data: {"id": 7, "login": params["login"]}}))
    instance.retry()
    assert instance.completed
    assert instance.data["account"] == {"id": 7, "login": "li"}


def test_timer_value_computed_at_run_time_is_an_incident(frozen_clock):
    xml = bpmn("late", start(), user("wait"), end(), timer_boundary("deadline", "wait", "wait_for"), end("timed_out"),
               chain("start", "wait", "end"), chain("deadline", "timed_out"))
    instance = Instance.start(load(xml), script_engine(), {"wait_for": "two days"})
    incident = assert_recorded(instance, "deadline", kind="engine")
    assert "Invalid duration" in incident.message
    instance = reload(instance)
    instance.retry({"wait_for": "P2D"})
    assert not instance.failed
    assert instance.next_timer_due() == frozen_clock.current + dt.timedelta(days=2)


def test_incident_as_dict():
    incident = Incident(element="x", message="m", kind="script", line=3)
    assert incident.as_dict() == {"element": "x", "kind": "script", "line": 3, "message": "m"}
    assert str(incident) == "x: m"


# -- timers ---------------------------------------------------------------------------------------

def test_timer_fires_exactly_once(frozen_clock):
    xml = bpmn("wait", start(), user("submit"), timer_catch("cool_off", '"PT1H"'), user("decide"), end(),
               chain("start", "submit", "cool_off", "decide", "end"))
    instance = Instance.start(load(xml), script_engine(), {})
    assert instance.next_timer_due() is None
    instance.complete(ready(instance, "submit").id, {})
    due = instance.next_timer_due()
    assert due == frozen_clock.current + dt.timedelta(hours=1)
    assert {"element_id": "cool_off", "state": "WAITING"} in instance.active_elements()

    instance = reload(instance)
    frozen_clock.advance(minutes=59)
    instance.fire_due_timers()
    assert instance.steps == [] and instance.user_tasks() == []
    assert instance.next_timer_due() == due

    frozen_clock.advance(minutes=2)
    instance = reload(instance)
    instance.fire_due_timers()
    instance.fire_due_timers()
    assert [s.element_id for s in instance.steps] == ["cool_off"]
    assert [t.element_id for t in instance.user_tasks()] == ["decide"]
    assert instance.next_timer_due() is None


def test_cycle_timer_reports_each_next_time(frozen_clock):
    cycle = ('<bpmn:boundaryEvent id="nag" attachedToRef="answer" cancelActivity="false"><bpmn:timerEventDefinition>'
             '<bpmn:timeCycle>"R3/PT10M"</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:boundaryEvent>\n')
    xml = bpmn("nagging", start(), user("answer"), cycle, script("count", "nags = nags + 1"), end("nagged"), end(),
               chain("start", "answer", "end"), chain("nag", "count", "nagged"))
    instance = Instance.start(load(xml), script_engine(), {"nags": 0})
    start_time = frozen_clock.current
    assert instance.next_timer_due() == start_time + dt.timedelta(minutes=10)
    fired, due = 0, []
    for _ in range(4):
        frozen_clock.advance(minutes=10, seconds=1)
        instance = reload(instance)
        instance.fire_due_timers()
        # A cycle's boundary event stays WAITING and starts its path once per period.
        fired += [s.element_id for s in instance.steps].count("count")
        due.append(instance.next_timer_due())
    assert fired == 3
    assert due == [start_time + dt.timedelta(minutes=20), start_time + dt.timedelta(minutes=30), None, None]
    assert ready(instance, "answer")


def test_time_date_timer(frozen_clock):
    at = (frozen_clock.current + dt.timedelta(days=1)).isoformat()
    xml = bpmn("date", start(), timer_catch("x", "0").replace(
        "<bpmn:timeDuration xsi:type=\"bpmn:tFormalExpression\">0</bpmn:timeDuration>",
        "<bpmn:timeDate>due_at</bpmn:timeDate>"), user("after"), end(), chain("start", "x", "after", "end"))
    instance = Instance.start(load(xml), script_engine(), {"due_at": at})
    assert instance.next_timer_due() == frozen_clock.current + dt.timedelta(days=1)
    frozen_clock.advance(days=1, seconds=1)
    instance.fire_due_timers()
    assert ready(instance, "after")


# -- messages -------------------------------------------------------------------------------------

CORRELATION = (
    '<bpmn:collaboration id="collab"><bpmn:participant id="orders_pool" processRef="orders" />'
    '<bpmn:correlationKey name="order_key"><bpmn:correlationPropertyRef>order_id</bpmn:correlationPropertyRef>'
    "</bpmn:correlationKey></bpmn:collaboration>\n"
    '<bpmn:correlationProperty id="order_id" name="order id">'
    '<bpmn:correlationPropertyRetrievalExpression messageRef="m_paid"><bpmn:messagePath>order_id</bpmn:messagePath>'
    "</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>\n"
)


def orders_process():
    return load(bpmn("orders", start(), message_catch("placed", "m_paid", variable="first"),
                     message_catch("paid", "m_paid", variable="payment"), user("ship"), end(),
                     chain("start", "placed", "paid", "ship", "end"),
                     head=message("m_paid", "paid") + CORRELATION), key="orders")


def test_deliver_routes_a_message_to_the_waiting_event():
    instance = Instance.start(orders_process(), script_engine(), {})
    assert instance.waiting_messages() == ["paid"]
    instance = reload(instance)
    instance.deliver("paid", {"order_id": "A-1", "amount": 10})
    assert instance.workflow.correlations == {"order_key": {"order_id": "A-1"}}
    assert instance.outbox == []
    assert [s.element_id for s in instance.steps] == ["placed"]

    instance = reload(instance)
    with pytest.raises(MessageNotCaught):
        instance.deliver("paid", {"order_id": "B-2"})  # another order's payment
    with pytest.raises(MessageNotCaught):
        instance.deliver("paid", {"amount": 3})  # no correlation property at all
    with pytest.raises(MessageNotCaught):
        instance.deliver("refund", {"order_id": "A-1"})
    assert instance.outbox == [] and instance.steps == []

    instance.deliver("paid", {"order_id": "A-1", "amount": 10})
    assert ready(instance, "ship").data["payment"] == {"order_id": "A-1", "amount": 10}
    assert instance.waiting_messages() == []


def test_deliver_when_nothing_waits():
    instance = Instance.start(divide_process(), script_engine(), {"total": 1})
    assert instance.waiting_messages() == []
    with pytest.raises(MessageNotCaught):
        instance.deliver("paid", {})


def test_message_boundary_interrupts_a_user_task():
    boundary = ('<bpmn:boundaryEvent id="withdrawn" attachedToRef="review">'
                '<bpmn:messageEventDefinition messageRef="m_withdraw" /></bpmn:boundaryEvent>\n')
    xml = bpmn("withdraw", start(), user("review"), boundary, end("withdrawn_end"), end(),
               chain("start", "review", "end"), chain("withdrawn", "withdrawn_end"),
               head=message("m_withdraw", "withdraw"))
    instance = Instance.start(load(xml), script_engine(), {})
    review = ready(instance, "review")
    assert instance.waiting_messages() == ["withdraw"]
    instance.deliver("withdraw")
    assert instance.completed
    with pytest.raises(TaskNotReady):
        instance.complete(review.id, {})


def test_thrown_message_lands_in_the_outbox():
    throw = ('<bpmn:intermediateThrowEvent id="notify"><bpmn:messageEventDefinition messageRef="m_done">'
             "<bpmn:extensionElements><spiffworkflow:messagePayload>{'who': who}</spiffworkflow:messagePayload>"
             "</bpmn:extensionElements></bpmn:messageEventDefinition></bpmn:intermediateThrowEvent>\n")
    xml = bpmn("tell", start(), user("fill"), throw, end(), chain("start", "fill", "notify", "end"),
               head=message("m_done", "done"))
    instance = Instance.start(load(xml), script_engine(), {})
    instance.complete(ready(instance, "fill").id, {"who": "li"})
    (event,) = instance.outbox
    assert event.event_definition.name == "done" and event.payload == {"who": "li"}


# -- user tasks -----------------------------------------------------------------------------------

def test_instructions_are_rendered_from_task_data():
    xml = bpmn("tpl", start(), user("greet", instructions="你好 {{ name }},共 {{ items|length }} 项"),
               user("broken", instructions="{{ name"), user("nosy", instructions="{{ ''.__class__.__mro__ }}"),
               end(), chain("start", "greet", "broken", "nosy", "end"))
    instance = Instance.start(load(xml), script_engine(), {"name": "李雷", "items": [1, 2, 3], "not an id": 1})
    assert ready(instance, "greet").instructions == "你好 李雷,共 3 项"
    instance.complete(ready(instance, "greet").id, {})
    assert ready(instance, "broken").instructions == "{{ name"  # shown as written, not an error
    instance.complete(ready(instance, "broken").id, {})
    # The sandboxed Jinja refuses dunder access; the text is shown as written, nothing leaks.
    assert ready(instance, "nosy").instructions == "{{ ''.__class__.__mro__ }}"


def test_user_task_view():
    xml = bpmn("view", start(), user("fill", name="填写", form="f.json", ui_form="f.ui.json", performers="dept_head"),
               end(), chain("start", "fill", "end"))
    instance = Instance.start(load(xml), script_engine(), {"a": 1})
    (task,) = instance.user_tasks()
    assert (task.element_id, task.name, task.form, task.ui_form, task.process_key) == \
        ("fill", "填写", "f.json", "f.ui.json", "view")
    assert task.properties["performers"] == "dept_head"
    assert task.data == {"a": 1}
    assert instance.user_task(task.id) == task


def test_complete_refuses_unknown_and_finished_tasks():
    instance = Instance.start(divide_process(), script_engine(), {"total": 1})
    task = ready(instance, "enter")
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(TaskNotFound):
            instance.complete(bad, {})
        with pytest.raises(TaskNotFound):
            instance.user_task(bad)
    script_task = next(t for t in instance.workflow.get_tasks() if t.task_spec.bpmn_id == "compute")
    with pytest.raises(TaskNotFound):
        instance.complete(str(script_task.id), {})
    instance.complete(task.id, {"parts": 1})
    with pytest.raises(TaskNotReady):
        instance.complete(task.id, {"parts": 1})


def test_steps_record_what_completed_in_this_unit_of_work():
    instance = Instance.start(divide_process(), script_engine(), {"total": 6})
    assert [s.element_id for s in instance.steps] == ["start"]
    instance = reload(instance)
    assert instance.steps == []
    step = instance.complete(ready(instance, "enter").id, {"parts": 3})
    assert [s.element_id for s in instance.steps] == ["enter", "compute"]
    assert step is instance.steps[0]
    assert (step.kind, step.name) == ("UserTask", "enter")
    assert str(uuid.UUID(step.task_id)) == step.task_id  # the same id user_tasks() handed out
    assert step.completed_at.tzinfo is not None
    assert instance.steps[1].kind == "ScriptTask"


def test_steps_use_the_engine_clock(frozen_clock):
    instance = Instance.start(divide_process(), script_engine(), {"total": 6})
    assert instance.steps[0].completed_at == frozen_clock.current


def test_call_activity_is_recorded_when_it_completes():
    from engine.loader import load_bundle
    from tests.engine.builders import call, document, process

    callee = process("callee", start("c_start"), user("inner"), end("c_end"), chain("c_start", "inner", "c_end"))
    caller = process("caller", start(), call("sub", "callee"), end(), chain("start", "sub", "end"))
    proc = load_bundle({"c.bpmn": document(caller, callee, pid="c")}).processes["caller"]
    instance = Instance.start(proc, script_engine(), {})
    assert "sub" not in [s.element_id for s in instance.steps]  # started, not completed
    assert {"element_id": "sub", "state": "STARTED"} in instance.active_elements()
    instance = reload(instance)
    inner = ready(instance, "inner")
    assert inner.process_key == "callee"
    instance.complete(inner.id, {"x": 1})
    assert [s.element_id for s in instance.steps] == ["inner", "c_end", "sub", "end"]
    assert instance.completed and instance.data["x"] == 1


def test_lane_is_reported_on_steps_and_tasks():
    xml = (FIXTURES / "leave_request.bpmn").read_text(encoding="utf-8")
    instance = Instance.start(load(xml), script_engine(), {})
    task = ready(instance, "submit_leave")
    assert task.lane == "initiator"
    step = instance.complete(task.id, {"days": 1})
    assert step.lane == "initiator"


# -- life cycle -----------------------------------------------------------------------------------

def test_cancel_closes_every_open_task():
    xml = bpmn("cancel", start(), user("a"), end(), timer_boundary("t", "a", '"PT1H"'), end("e2"),
               chain("start", "a", "end"), chain("t", "e2"))
    instance = Instance.start(load(xml), script_engine(), {})
    task = ready(instance, "a")
    assert instance.next_timer_due() is not None
    instance.cancel()
    assert instance.user_tasks() == [] and instance.active_elements() == []
    assert instance.next_timer_due() is None and instance.waiting_messages() == []
    instance = reload(instance)
    assert instance.user_tasks() == []
    with pytest.raises(TaskNotReady):
        instance.complete(task.id, {})


def test_initial_data_reaches_the_first_task_and_the_end():
    instance = Instance.start(divide_process(), script_engine(), {"total": 9, "meta": {"source": "web"}})
    assert ready(instance, "enter").data == {"total": 9, "meta": {"source": "web"}}
    instance.complete(ready(instance, "enter").id, {"parts": 3})
    instance.complete(ready(instance, "check").id, {"ok": True})
    assert instance.completed
    assert instance.data == {"total": 9, "meta": {"source": "web"}, "parts": 3, "share": 3.0, "ok": True}


def test_dumps_is_valid_json_after_an_incident():
    instance = Instance.start(gateway_process(), script_engine(), {})
    assert instance.failed
    assert json.loads(instance.dumps())["format"] == "inkless/1"


# -- the clock ------------------------------------------------------------------------------------

def test_clock_provider_moves_spiffs_timer_module_and_resets(frozen_clock):
    from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module

    from engine import clock

    assert clock.now() == frozen_clock.current
    assert timer_module.datetime.now(dt.UTC) == frozen_clock.current
    frozen_clock.advance(hours=2)
    assert timer_module.datetime.now(dt.UTC) == frozen_clock.current
    # Without a tz, datetime.now() means local wall time; the replacement keeps that meaning.
    assert timer_module.datetime.now() == frozen_clock.current.astimezone().replace(tzinfo=None)
    clock.set_provider(None)
    assert abs(clock.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_frozen_clock_refuses_a_naive_start():
    from engine import clock

    with pytest.raises(ValueError):
        clock.FrozenClock(dt.datetime(2025, 1, 1))


def race_process():
    race = ('<bpmn:eventBasedGateway id="race" />\n'
            '<bpmn:intermediateCatchEvent id="got_answer"><bpmn:messageEventDefinition messageRef="m_answer" />'
            "</bpmn:intermediateCatchEvent>\n"
            + timer_catch("gave_up", '"PT1H"'))
    return load(bpmn("answer_or_timeout", start(), user("ask"), race, user("answered"), end(), end("no_answer"),
                     chain("start", "ask", "race"), chain("race", "got_answer", "answered", "end"),
                     chain("race", "gave_up", "no_answer"), head=message("m_answer", "answer")))


def test_event_based_gateway_takes_the_message(frozen_clock):
    instance = Instance.start(race_process(), script_engine(), {})
    instance.complete(ready(instance, "ask").id, {})
    instance = reload(instance)
    assert instance.waiting_messages() == ["answer"]
    assert instance.next_timer_due() == frozen_clock.current + dt.timedelta(hours=1)
    instance.deliver("answer", {"text": "yes"})
    assert ready(instance, "answered")
    assert instance.next_timer_due() is None and instance.waiting_messages() == []


def test_event_based_gateway_takes_the_timer(frozen_clock):
    instance = Instance.start(race_process(), script_engine(), {})
    instance.complete(ready(instance, "ask").id, {})
    frozen_clock.advance(hours=1, seconds=1)
    instance = reload(instance)
    instance.fire_due_timers()
    assert instance.completed
    assert "no_answer" in [s.element_id for s in instance.steps]
    with pytest.raises(MessageNotCaught):
        instance.deliver("answer", {})
