"""Supervisors' live views through HTTP: counts per element, who may see them, the overdue and
incident lists, the instance page and its admin actions (R-WF-3, R-SUP-1, R-SEC-8, R-ACC-3)."""
from __future__ import annotations

import re

import pytest

from service.models import AuditEvent, InstanceStep
from tests.service import test_pages
from tests.service.diagrams import escalation_process, wait_process
from tests.service.flows import complete, only_task
from tests.service.test_account_application import APPLICATION
from tests.service.test_fault_report import _report, _triage
from tests.service.test_incidents import _deploy_and_reach_script
from tests.service.test_pages import text
from tests.service.test_scheduler import _deploy

browser = test_pages.browser  # the fixture: one person's page session through the test client

ELEMENTS = "/api/v1/supervision/processes/account_application/elements"


def start_application(login, business_key: str) -> int:
    api = login("office_admin")
    r = api.post("/api/v1/process-instances", json={"process_key": "account_application", "business_key": business_key})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def advance(login, instance_id: int, to: str) -> None:
    """Take an application from the form up to `to` (fill_application, dept_head_review or platform_review)."""
    steps = [("office_admin", "fill_application", APPLICATION),
             ("office_head", "dept_head_review", {"decision": "approve", "opinion": "同意"})]
    for who, element, data in steps:
        if element == to:
            return
        task = only_task(login(who), instance_id=instance_id)
        assert task["element_id"] == element
        complete(login(who), task, data)


def seed_applications(login) -> dict[str, list[int]]:
    """Four applications: one at the form, two at the head's review, one at the platform's."""
    at: dict[str, list[int]] = {"fill_application": [], "dept_head_review": [], "platform_review": []}
    for n, step in enumerate(["dept_head_review", "platform_review", "fill_application", "dept_head_review"]):
        instance_id = start_application(login, f"ACC-{n + 1}")
        advance(login, instance_id, step)
        at[step].append(instance_id)
    return at


def counts(api, **params) -> dict:
    r = api.get(ELEMENTS, query_string=params)
    assert r.status_code == 200, r.get_json()
    return {k: (v["count"], v["overdue"], v["incidents"]) for k, v in r.get_json()["elements"].items()}


def test_counts_per_element_follow_the_instances(login):
    """R-WF-3: where the running instances of a process stand, per element, in one JSON answer."""
    at = seed_applications(login)
    supervisor = login("supervisor")
    assert counts(supervisor) == {"fill_application": (1, 0, 0), "dept_head_review": (2, 0, 0),
                                  "platform_review": (1, 0, 0)}
    body = supervisor.get(ELEMENTS).get_json()
    assert body["version"] == 1
    assert body["elements"]["dept_head_review"]["name"] == "部门负责人审核"
    assert body["elements"]["dept_head_review"]["href"].endswith("element=dept_head_review#waiting")
    # One moves on: the counts move with it.
    complete(login("platform"), only_task(login("platform"), instance_id=at["platform_review"][0]),
             {"decision": "approve", "opinion": ""})
    assert counts(supervisor) == {"fill_application": (1, 0, 0), "dept_head_review": (2, 0, 0)}
    summary = {p["key"]: p for p in supervisor.get("/api/v1/supervision/processes").get_json()["items"]}
    assert summary["account_application"]["running"] == 3 and summary["account_application"]["incidents"] == 0
    assert summary["fault_report"]["running"] == 0


def test_timer_waits_count_where_they_wait_and_boundary_timers_do_not_count_twice(login, frozen):
    """A token at a timer is counted there; a task with a boundary timer once, at the task."""
    admin = login("sysadmin")
    _deploy(admin, "wait.bpmn", wait_process("waiting", "P1D"))
    _deploy(admin, "esc.bpmn", escalation_process())
    clerk = login("clerk")
    for key in ("waiting", "waiting", "escalating_approval"):
        assert clerk.post("/api/v1/process-instances", json={"process_key": key}).status_code == 201
    supervisor = login("supervisor")
    waiting = supervisor.get("/api/v1/supervision/processes/waiting/elements").get_json()["elements"]
    assert {k: v["count"] for k, v in waiting.items()} == {"wait": 2}
    escalating = supervisor.get("/api/v1/supervision/processes/escalating_approval/elements").get_json()["elements"]
    assert [(v["count"], v["overdue"]) for v in escalating.values()] == [(1, 0)]
    frozen.advance(days=3)  # past the task's due date
    escalating = supervisor.get("/api/v1/supervision/processes/escalating_approval/elements").get_json()["elements"]
    assert [(v["count"], v["overdue"]) for v in escalating.values()] == [(1, 1)]


def test_who_may_supervise_what(login):
    """R-ACC-3: supervisors and system admins see everything, a department admin their own
    department, an ordinary user nothing (403, pages too)."""
    seed_applications(login)
    everything = counts(login("supervisor"))
    assert counts(login("sysadmin")) == everything
    assert counts(login("office_admin")) == everything  # all were started in OFFICE
    assert counts(login("fin_admin")) == {}
    for path in (ELEMENTS, "/api/v1/supervision/processes"):
        assert login("clerk").get(path).status_code == 403
        assert login("office_head").get(path).status_code == 403
    assert login("supervisor").get("/api/v1/supervision/processes/nothing/elements").status_code == 404


def test_pages_refuse_people_who_supervise_nothing(browser, login):
    instance_id = start_application(login, "ACC-1")
    clerk = browser("clerk")
    assert "/supervise" not in text(clerk.get("/"))
    for path in ("/supervise", "/supervise/processes/account_application", f"/supervise/instances/{instance_id}",
                 "/supervise/overdue", "/supervise/incidents"):
        assert clerk.get(path).status_code == 403, path
    assert browser("fin_admin").get(f"/supervise/instances/{instance_id}").status_code == 404
    assert browser().get("/supervise").status_code == 302  # sign in first


def test_overview_page_lists_processes_and_the_instances_at_a_step(browser, login):
    at = seed_applications(login)
    page = browser("supervisor")
    home = text(page.get("/"))
    assert 'href="/supervise"' in home
    overview = text(page.get("/supervise"))
    assert "账号申请" in overview and 'href="/supervise/processes/account_application"' in overview
    r = page.get("/supervise/processes/account_application?element=dept_head_review")
    assert r.status_code == 200
    html = text(r)
    assert 'data-overlays="/api/v1/supervision/processes/account_application/elements?version=1"' in html
    assert 'data-refresh="5"' in html
    shown = re.findall(r'<tr data-element="(\w+)" data-element-name="[^"]*" >', html)
    hidden = re.findall(r'<tr data-element="(\w+)" data-element-name="[^"]*" hidden>', html)
    assert shown == ["dept_head_review", "dept_head_review"] and sorted(hidden) == ["fill_application",
                                                                                   "platform_review"]
    for instance_id in at["dept_head_review"]:
        assert f'href="/supervise/instances/{instance_id}"' in html
    # The counts are in a table too, for screen readers and without JavaScript.
    row = re.search(r'<tr data-element="dept_head_review">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td data-count="\w+">(\d+)</td>', row) == ["2", "0", "0"]


def test_overdue_list_with_filters(app, login, browser, frozen):
    """R-WF-3: tasks past their due date, filtered by process, department, assignee and age."""
    instance_id = _report(login)
    _triage(login, instance_id, severity="critical", emergency_plan=True)  # due in 4 hours
    supervisor = login("supervisor")
    assert counts(supervisor) == {}
    frozen.advance(hours=5)
    r = supervisor.get("/api/v1/supervision/processes/fault_report/elements").get_json()
    assert {k: (v["count"], v["overdue"]) for k, v in r["elements"].items()} == {"handle_fault": (1, 1)}
    page = browser("supervisor")
    html = text(page.get("/supervise/overdue"))
    assert f'href="/supervise/instances/{instance_id}"' in html
    assert f"/supervise/instances/{instance_id}" in text(page.get("/supervise/overdue?process=fault_report&department=OFFICE&age=0"))
    for query in ("process=account_application", "department=FIN", "age=1", "assignee=clerk"):
        assert f"/supervise/instances/{instance_id}" not in text(page.get(f"/supervise/overdue?{query}")), query
    r = page.get("/supervise/overdue?age=abc")
    assert r.status_code == 422 and 'aria-invalid="true"' in text(r)


def test_incident_list_and_retry_with_a_reason(login, browser):
    r, _elapsed, _clerk, instance_id = _deploy_and_reach_script(login, "failing", "x = 1 / 0")
    assert r.get_json()["state"] == "error"
    supervisor = login("supervisor")
    failing = supervisor.get("/api/v1/supervision/processes/failing/elements").get_json()["elements"]
    assert failing["run_script"]["incidents"] == 1
    page = browser("supervisor")
    html = text(page.get("/supervise/incidents"))
    assert f"/supervise/instances/{instance_id}" in html and "division" in html
    assert f"/supervise/instances/{instance_id}" not in text(page.get("/supervise/incidents?department=FIN"))
    # A supervisor inspects; retrying is for administrators.
    detail = text(page.get(f"/supervise/instances/{instance_id}"))
    assert "/retry" not in detail and 'data-incidents="run_script"' in detail
    assert page.post(f"/supervise/instances/{instance_id}/retry", {"reason": "看看"}).status_code == 403
    admin = browser("sysadmin")
    assert f"/supervise/instances/{instance_id}/retry" in text(admin.get(f"/supervise/instances/{instance_id}"))
    r = admin.post(f"/supervise/instances/{instance_id}/retry", {"reason": " "})
    assert r.status_code == 422 and 'id="reason-retry-error"' in text(r)


def test_instance_page_shows_path_position_and_timeline(login, browser):
    at = seed_applications(login)
    instance_id = at["platform_review"][0]
    page = browser("supervisor")
    html = text(page.get(f"/supervise/instances/{instance_id}"))
    assert 'data-current="platform_review"' in html
    completed = re.search(r'data-completed="([^"]*)"', html).group(1).split()
    assert {"start", "fill_application", "dept_head_review"} <= set(completed)
    timeline = re.search(r'<table class="record-steps" id="timeline">(.*?)</table>', html, re.S).group(1)
    assert "部门负责人审核" in timeline and "同意" in timeline
    # The supervisor sees how it was handled, not the applicant's personal data.
    assert APPLICATION["phone"] not in html
    assert APPLICATION["phone"] in text(browser("office_admin").get(f"/supervise/instances/{instance_id}"))


def test_move_back_reopens_an_earlier_step_audited(app, login, browser):
    """An administrator sends an application at the platform's review back to the head's review,
    with a reason: the task moves, the history says so, the audit log too."""
    at = seed_applications(login)
    instance_id = at["platform_review"][0]
    admin = browser("sysadmin")
    html = text(admin.get(f"/supervise/instances/{instance_id}"))
    options = re.search(r'<select id="move-back-step" name="element_id">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r'value="(\w+)"', options) == ["dept_head_review", "fill_application"]
    r = admin.post(f"/supervise/instances/{instance_id}/move-back", {"element_id": "dept_head_review", "reason": ""})
    assert r.status_code == 422
    r = admin.post(f"/supervise/instances/{instance_id}/move-back",
                   {"element_id": "platform_review", "reason": "重审"})
    assert r.status_code == 422  # not an earlier step
    r = admin.post(f"/supervise/instances/{instance_id}/move-back",
                   {"element_id": "dept_head_review", "reason": "负责人意见需补充"})
    assert r.status_code == 302
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0
    task = only_task(login("office_head"), instance_id=instance_id)
    assert task["element_id"] == "dept_head_review"
    html = text(admin.get(f"/supervise/instances/{instance_id}"))
    assert "负责人意见需补充" in html and 'data-current="dept_head_review"' in html
    with app.app_context():
        s = app.extensions["inkless.db"]()
        moved = s.query(InstanceStep).filter_by(instance_id=instance_id, kind="moved_back").one()
        assert moved.element_id == "dept_head_review" and moved.opinion == "负责人意见需补充"
        event = s.query(AuditEvent).filter_by(action="instance_moved_back").one()
        assert event.detail == {"to": "dept_head_review", "from": ["platform_review"], "reason": "负责人意见需补充"}
        s.close()
    # The process carries on from there.
    complete(login("office_head"), task, {"decision": "approve", "opinion": "已补充"})
    assert only_task(login("platform"), instance_id=instance_id)["element_id"] == "platform_review"


# office_admin started the seeded applications: like the API, the page lets a starter withdraw
# (cancel) their own request, but moving the token back is for the platform (service/policy.py).
@pytest.mark.parametrize("who, move_back, cancel", [("office_admin", 403, 302), ("supervisor", 403, 403),
                                                    ("platform", 302, 302)])
def test_move_back_is_for_platform_administrators_cancel_also_for_the_starter(login, browser, who, move_back, cancel):
    at = seed_applications(login)
    page = browser(who)
    page.get(f"/supervise/instances/{at['dept_head_review'][0]}")
    r = page.post(f"/supervise/instances/{at['dept_head_review'][0]}/move-back",
                  {"element_id": "fill_application", "reason": "补充材料"})
    assert r.status_code == move_back
    r = page.post(f"/supervise/instances/{at['dept_head_review'][1]}/cancel", {"reason": "重复申请"})
    assert r.status_code == cancel


def test_department_admin_reassigns_from_the_instance_page(login, browser):
    at = seed_applications(login)
    instance_id = at["dept_head_review"][0]
    page = browser("office_admin")
    task = only_task(login("office_head"), instance_id=instance_id)
    r = page.post(f"/supervise/instances/{instance_id}/reassign",
                  {"task_id": task["id"], "username": "clerk", "reason": ""})
    assert r.status_code == 422
    r = page.post(f"/supervise/instances/{instance_id}/reassign",
                  {"task_id": task["id"], "username": "clerk", "reason": "负责人出差"})
    assert r.status_code == 302
    assert only_task(login("clerk"), instance_id=instance_id)["assignee"] == "clerk"
