"""engine.scenarios.run_scenario: a process run with sample data, stubbed services and a private clock.

Issue 7: scenario tests saved with a model and the studio's "try it" sandbox both go through it.
"""
from __future__ import annotations

import datetime as dt

from engine import clock
from engine.scenarios import run_scenario
from tests.engine.builders import bpmn, chain, end, flow, service, start, timer_boundary, user, xor

# A request is reviewed; approval calls a service and branches on its answer; an unanswered review
# escalates after two days (an interrupting timer on the review).
REVIEW = bpmn(
    "review",
    start(),
    user("submit", form="request.json", post='amount = int(amount)'),
    user("review_task", pre='decision = ""'),
    timer_boundary("review_overdue", "review_task", '"P2D"'),
    xor("decided"),
    service("book", "book_payment", {"amount": "amount"}, result="booking"),
    xor("booked", default="flow_booked_no"),
    end("end_paid"), end("end_refused"), end("end_unpaid"), end("end_escalated"),
    chain("start", "submit", "review_task", "decided"),
    flow("decided", "book", 'decision == "approve"', fid="flow_approve"),
    flow("decided", "end_refused", 'decision == "reject"', fid="flow_reject"),
    flow("book", "booked"),
    flow("booked", "end_paid", 'booking["ok"]', fid="flow_booked_ok"),
    flow("booked", "end_unpaid", fid="flow_booked_no"),
    flow("review_overdue", "end_escalated", fid="flow_overdue"),
)
FILES = {"review.bpmn": REVIEW.encode()}
FORMS = {"request.json": {"type": "object", "required": ["amount"],
                          "properties": {"amount": {"type": "integer", "minimum": 1}}}}


def _scenario(**overrides) -> dict:
    scenario = {
        "name": "approved and booked",
        "description": "A reviewer approves; the payment is booked.",
        "start": {"initiator": "clerk"},
        "steps": [{"task": "submit", "data": {"amount": 120}},
                  {"task": "review_task", "data": {"decision": "approve"}}],
        "services": {"book_payment": {"ok": True, "reference": "PAY-7"}},
        "expect": {"path": ["submit", "review_task", "book", "end_paid"], "end": "end_paid",
                   "data": {"booking": {"ok": True, "reference": "PAY-7"}, "amount": 120}},
    }
    scenario.update(overrides)
    return scenario


def test_a_scenario_that_passes_reports_the_path_data_and_flows():
    """Issue 7: the path taken, the final data, the flows and the service calls come back; ok is true."""
    result = run_scenario(FILES, "review", _scenario(), forms=FORMS)
    assert result["failures"] == [] and result["ok"] is True
    assert result["path"] == ["start", "submit", "review_task", "decided", "book", "booked", "end_paid"]
    assert result["waiting"] == []
    assert result["data"]["booking"] == {"ok": True, "reference": "PAY-7"}
    assert {"element": "book", "name": "book", "kind": "ServiceTask"} in result["steps"]
    assert result["flows"] == ["flow_start_submit", "flow_submit_review_task", "flow_review_task_decided",
                               "flow_approve", "flow_book_booked", "flow_booked_ok"]
    # The service saw the parameters the diagram evaluated from task data.
    assert result["calls"] == [{"service": "book_payment", "params": {"amount": 120}}]


def test_results_in_call_order_and_a_waiting_expectation():
    """Issue 7: a list declares one result per call; a scenario may stop at a waiting task."""
    result = run_scenario(FILES, "review", _scenario(
        services={"book_payment": [{"ok": False}]},
        expect={"end": "end_unpaid", "path": ["booked", "end_unpaid"]}))
    assert result["ok"], result["failures"]
    partial = run_scenario(FILES, "review", _scenario(steps=[{"task": "submit", "data": {"amount": 5}}],
                                                      expect={"waiting": ["review_task"]}))
    assert partial["ok"] and partial["waiting"] == ["review_task"] and partial["path"][-1] == "submit"


def test_an_expectation_that_fails_says_what_was_expected_and_what_happened():
    """Issue 7: wrong end, wrong data and an unreached element each give a readable failure."""
    result = run_scenario(FILES, "review", _scenario(
        steps=[{"task": "submit", "data": {"amount": 120}}, {"task": "review_task", "data": {"decision": "reject"}}],
        expect={"path": ["submit", "book"], "end": "end_paid", "data": {"decision": "approve"}}))
    assert result["ok"] is False
    assert result["path"][-1] == "end_refused"
    failures = "\n".join(result["failures"])
    assert "expected path: 'book' was not reached after 'submit'" in failures
    assert "start → submit → review_task → decided → end_refused" in failures
    assert "expected end 'end_paid' was not reached" in failures
    assert 'expected data \'decision\' = "approve", got "reject"' in failures


def test_an_unknown_task_id_names_the_step_and_what_is_waiting():
    """Issue 7: a step for a task that is not ready stops the run and says where the process waits."""
    result = run_scenario(FILES, "review", _scenario(steps=[{"task": "approve_it", "data": {}}]))
    assert result["ok"] is False
    assert result["failures"][0].startswith("step 1: task 'approve_it' is not ready (waiting at: submit)")
    assert result["waiting"] == ["submit"]


def test_a_missing_service_result_names_the_element_and_the_service():
    """Issue 7: service tasks are answered only from the scenario; an undeclared one is a failure."""
    result = run_scenario(FILES, "review", _scenario(services={}))
    assert result["ok"] is False
    (failure,) = result["failures"]
    assert "step 2" in failure and "element 'book'" in failure and "'book_payment'" in failure
    # Too few results for the calls made is reported the same way.
    short = run_scenario(FILES, "review", _scenario(services={"book_payment": []}))
    assert "declares only 0 results" in short["failures"][0]


def test_advancing_the_clock_fires_timers_without_moving_the_real_clock():
    """Issue 7, R-OPS-3: {"advance": "P3D"} fires the boundary timer; the platform's clock is untouched."""
    before = clock.now()
    result = run_scenario(FILES, "review", _scenario(
        steps=[{"task": "submit", "data": {"amount": 1}}, {"advance": "P1D"}],
        expect={"waiting": ["review_task"]}))
    assert result["ok"], result["failures"]
    result = run_scenario(FILES, "review", _scenario(
        steps=[{"task": "submit", "data": {"amount": 1}}, {"advance": "P3D"}],
        expect={"end": "end_escalated", "path": ["review_overdue", "end_escalated"]}))
    assert result["ok"], result["failures"]
    assert "flow_overdue" in result["flows"] and result["waiting"] == []
    assert abs(clock.now() - before) < dt.timedelta(minutes=1)


def test_form_data_is_checked_against_the_task_form():
    """Issue 7: with forms given, a step whose data the form refuses fails, naming the field."""
    result = run_scenario(FILES, "review", _scenario(steps=[{"task": "submit", "data": {"amount": 0}}]), forms=FORMS)
    assert result["ok"] is False
    assert "step 1 (submit): form 'request.json', field 'amount'" in result["failures"][0]


def test_bad_input_is_reported_not_raised():
    """Issue 7: the studio sends drafts; a wrong process id, a broken diagram or a malformed step is a failure."""
    wrong = run_scenario(FILES, "nope", _scenario())
    assert wrong["ok"] is False and "process 'nope' is not in the files (found: review)" in wrong["failures"][0]
    broken = run_scenario({"x.bpmn": b"<bpmn:definitions"}, "review", _scenario())
    assert broken["ok"] is False and broken["failures"][0].startswith("the diagram is invalid")
    odd = run_scenario(FILES, "review", _scenario(steps=[{"jump": "end"}]))
    assert "step 1: expected one of" in odd["failures"][0]
    bad_advance = run_scenario(FILES, "review", _scenario(steps=[{"advance": "three days"}]))
    assert "ISO 8601 duration" in bad_advance["failures"][0]


def test_helpers_messages_and_multi_instance_steps():
    """Issue 7: declared helper results stand in for database helpers; a message start and a
    message step are delivered; "match" picks one instance of a multi-instance task by its data."""
    from tests.engine.builders import document, message, message_catch, process, script

    xml = document(process(
        "intake",
        start("start", '<bpmn:messageEventDefinition messageRef="m_filed"><bpmn:extensionElements>'
              "<spiffworkflow:messageVariable>filing</spiffworkflow:messageVariable>"
              "</bpmn:extensionElements></bpmn:messageEventDefinition>"),
        script("lookup", 'owner = owner_of(filing["department"])\nreviewers = ["FIN", "OFFICE"]'),
        user("review_each").replace("</bpmn:userTask>", (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopDataInputRef>reviewers</bpmn:loopDataInputRef>"
            "<bpmn:loopDataOutputRef>opinions</bpmn:loopDataOutputRef>"
            '<bpmn:inputDataItem id="reviewer" name="reviewer" /><bpmn:outputDataItem id="note" name="note" />'
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>")),
        message_catch("wait_paid", "m_paid", variable="paid"),
        end(),
        chain("start", "lookup", "review_each", "wait_paid", "end"),
    ), pid="intake", head=message("m_filed", "filed") + message("m_paid", "paid"))
    scenario = {
        "name": "intake", "description": "filed by message",
        "start_by": {"message": "filed", "payload": {"department": "FIN"}},
        "helpers": {"owner_of": "fin_head"},
        "steps": [{"task": "review_each", "match": {"reviewer": "OFFICE"}, "data": {"note": "办公室意见"}},
                  {"task": "review_each", "match": {"reviewer": "FIN"}, "data": {"note": "财务意见"}},
                  {"message": "paid", "payload": {"amount": 3}}],
        "expect": {"end": "end", "data": {"owner": "fin_head", "opinions": ["办公室意见", "财务意见"],
                                          "paid": {"amount": 3}}},
    }
    result = run_scenario({"intake.bpmn": xml.encode()}, "intake", scenario)
    assert result["ok"], result["failures"]
    assert {"helper": "owner_of", "params": {"args": ["FIN"]}} in result["calls"]
    wrong = run_scenario({"intake.bpmn": xml.encode()}, "intake",
                         dict(scenario, steps=[{"task": "review_each", "match": {"reviewer": "HQ"}, "data": {}}]))
    assert "no ready 'review_each' has {\"reviewer\": \"HQ\"}" in wrong["failures"][0]
    # Without the helper's declared result the script fails, and the failure names the element.
    missing = run_scenario({"intake.bpmn": xml.encode()}, "intake", dict(scenario, helpers={}))
    assert "element 'lookup'" in missing["failures"][0] and "owner_of" in missing["failures"][0]


def test_failures_carry_their_template_for_the_users_language():
    """Issue 7: each failure also comes as {message, template, params}, so the studio can say it in Chinese."""
    result = run_scenario(FILES, "review", _scenario(steps=[{"task": "submit", "data": {"amount": 3}}, {"advance": "PT1H"}],
                                                     expect={"end": "end_paid"}))
    (detail,) = result["failure_details"]
    assert detail["template"] == "expected the process to end at %(ends)s, but it is waiting at: %(waiting)s"
    assert detail["params"] == {"ends": "end_paid", "waiting": "review_task"}
    assert detail["message"] == result["failures"][0] == "expected the process to end at end_paid, but it is waiting at: review_task"


def test_a_draft_that_loops_forever_is_stopped(monkeypatch):
    """Issue 7: the studio runs drafts inside a request; a loop that never waits ends as a failure
    (SpiffWorkflow itself would stop ~500 rounds in and call the process finished)."""
    from engine import scenarios
    from tests.engine.builders import script

    xml = bpmn("spin", start(), script("count", "n = n + 1"), xor("again", default="flow_back"),
               end(), chain("start", "count", "again"), flow("again", "end", "n < 0", fid="flow_out"),
               flow("again", "count", fid="flow_back"))
    files, scenario = {"spin.bpmn": xml.encode()}, {"name": "spin", "description": "", "start": {"n": 0}}
    result = run_scenario(files, "spin", scenario)
    assert result["ok"] is False
    assert result["failures"][0].startswith("start: more than 300 elements ran without waiting")
    # Scripts and conditions are counted too (and timed), so a slow loop stops as well.
    monkeypatch.setattr(scenarios, "MAX_EVALUATIONS", 50)
    result = run_scenario(files, "spin", scenario)
    assert "stopped after 50 scripts and conditions" in result["failures"][0]
