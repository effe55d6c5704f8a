"""R-SUP-3, R-SUP-5 (issue 18): scores per person, quarterly — each person's figures (usage,
timeliness of their tasks with a due date, the approval pass rate of the requests they submitted)
and a score from the assessment weights without the security component, visible to the person,
the head of their department, the supervision group and system administrators, and nobody else.

The records are written by hand into the tables at fixed moments after the frozen clock's
2026-12-01 09:00 Beijing time (when the organisation's accounts are made), inside 2026-Q4; the
clock then moves on ten days and everyone asks for the quarter so far.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service import audit
from service.models import (
    Department,
    Deployment,
    DeploymentFile,
    InstanceStep,
    ProcessDefinition,
    ProcessInstance,
    User,
)
from service.procedures.indicators import assessment_weights, quarter
from tests.conftest import FROZEN_MOMENT, ORG_USERS
from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

Q4 = quarter("2026-Q4")
DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs" targetNamespace="http://inkless">
  <bpmn:process id="office_work" isExecutable="true">
    <bpmn:userTask id="fill"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="due" value="&quot;P3D&quot;" />
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
    <bpmn:userTask id="review"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="approval" value="true" />
      <spiffworkflow:property name="due" value="&quot;P2D&quot;" />
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>"""


def at(days: float):
    """A moment `days` after the frozen clock's start (2026-12-01 09:00 Beijing time)."""
    return FROZEN_MOMENT + timedelta(days=days)


@pytest.fixture
def records(app, org, frozen):
    """clerk (OFFICE) starts two requests and does three tasks with a due date, two on time and one
    after its overdue notice; office_head approves the first request on time, which then ends."""
    s = app.extensions["inkless.db"]()
    with app.test_request_context():
        users = {u.username: u for u in s.scalars(select(User))}
        deployment = Deployment()
        deployment.files = [DeploymentFile(name="office_work.bpmn", kind="bpmn", content=DIAGRAM)]
        s.add(deployment)
        s.flush()
        definition = ProcessDefinition(key="office_work", version=1, name="办公", file="office_work.bpmn",
                                       deployment_id=deployment.id)
        s.add(definition)
        s.flush()

        def instance(started, state="running", ended=None):
            row = ProcessInstance(definition_id=definition.id, process_key="office_work", version=1, state=state,
                                  started_by=users["clerk"].id, department_id=users["clerk"].department_id,
                                  started_at=started, ended_at=ended, engine_state="{}", serializer_version="1.5",
                                  incidents=[])
            s.add(row)
            s.flush()
            return row

        def step(row, element, task_id, when, by, decision=None):
            s.add(InstanceStep(instance_id=row.id, element_id=element, name=element, kind="UserTask",
                               task_id=task_id, user_id=users[by].id, completed_at=when, decision=decision))

        first = instance(at(0.1), state="completed", ended=at(3.1))
        second = instance(at(0.2))
        step(first, "fill", "C1", at(1), "clerk")  # on time
        step(second, "fill", "C2", at(2), "clerk")  # on time
        frozen.current = at(2.5)  # the deadline job flags C3 overdue before clerk does it: late
        audit.record(s, "task_overdue", "task", "C3", detail={"instance": second.id, "element": "fill"})
        step(second, "fill", "C3", at(3), "clerk")
        step(first, "review", "H1", at(3.05), "office_head", decision="approve")  # on time; the request passes
        s.commit()
    s.close()
    frozen.current = at(10)
    return frozen


def _usernames(response) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {item["username"] for item in response.get_json()["items"]}


def test_a_clerks_score_weighs_their_on_time_and_late_tasks(app, login, records):
    """R-SUP-3, R-SUP-5: clerk used the platform (usage 1), did 2 of 3 tasks with a due date on time
    (timeliness 2/3) and the one request decided passed (approval 1): with the shipped weights
    30/30/20 and security left out, 100·(30·1 + 30·2/3 + 20·1)/80 = 87.5."""
    r = login("clerk").get("/api/v1/person-scores/me", query_string={"period": "2026-Q4"})
    assert r.status_code == 200, r.get_json()
    me = r.get_json()
    assert (me["username"], me["department"], me["period"]["label"]) == ("clerk", "OFFICE", "2026-Q4")
    assert me["used"] is True and me["usage_rate"] == 1.0
    assert (me["tasks_completed"], me["instances_started"]) == (3, 2)
    assert (me["due_tasks"], me["on_time_tasks"], me["late_tasks"]) == (3, 2, 1)
    assert me["timeliness_rate"] == pytest.approx(2 / 3)
    assert (me["submissions"], me["submissions_passed"], me["approval_pass_rate"]) == (1, 1, 1.0)
    with app.app_context():
        w = assessment_weights(None, Q4.start)
    expected = 100 * (w.usage_rate * 1 + w.timeliness_rate * 2 / 3 + w.approval_pass_rate * 1) / (
        w.usage_rate + w.timeliness_rate + w.approval_pass_rate)
    assert me["score"] == round(expected, 1) == 87.5

    by_name = {i["username"]: i for i in login("supervisor").get(
        "/api/v1/person-scores", query_string={"period": "2026-Q4"}).get_json()["items"]}
    # office_head: used, one review on time, nothing submitted: 100·(30 + 30)/60
    assert by_name["office_head"]["score"] == 100.0
    assert by_name["office_head"]["approval_pass_rate"] is None
    # fin_head did nothing: only the usage component applies, and it is 0.
    assert (by_name["fin_head"]["used"], by_name["fin_head"]["timeliness_rate"], by_name["fin_head"]["score"]) == (
        False, None, 0.0)


def test_each_person_sees_their_own_their_head_their_department_supervisors_everyone(app, login, records):
    """R-SUP-5: a person's score is visible to themselves, the head of their department and the
    supervisors (and system administrators); another department's head or a department
    administrator does not find the person (404), nor gets the department's list (403)."""
    q = {"period": "2026-Q4"}
    clerk, head, fin_head = login("clerk"), login("office_head"), login("fin_head")
    assert _usernames(clerk.get("/api/v1/person-scores", query_string=q)) == {"clerk"}
    assert clerk.get("/api/v1/person-scores/clerk", query_string=q).get_json()["score"] == 87.5
    assert clerk.get("/api/v1/person-scores/office_head", query_string=q).status_code == 404
    assert clerk.get("/api/v1/person-scores", query_string={**q, "department": "OFFICE"}).status_code == 403

    office = {"office_head", "office_admin", "clerk"}
    assert _usernames(head.get("/api/v1/person-scores", query_string=q)) == office
    assert _usernames(head.get("/api/v1/person-scores", query_string={**q, "department": "OFFICE"})) == office
    assert head.get("/api/v1/person-scores/clerk", query_string=q).get_json()["score"] == 87.5
    assert head.get("/api/v1/person-scores", query_string={**q, "department": "FIN"}).status_code == 403

    assert fin_head.get("/api/v1/person-scores/clerk", query_string=q).status_code == 404
    assert fin_head.get("/api/v1/person-scores", query_string={**q, "department": "OFFICE"}).status_code == 403
    assert _usernames(fin_head.get("/api/v1/person-scores", query_string=q)) == {"fin_head", "fin_admin"}
    # A department administrator is not its head.
    assert login("office_admin").get("/api/v1/person-scores/clerk", query_string=q).status_code == 404
    assert _usernames(login("office_admin").get("/api/v1/person-scores", query_string=q)) == {"office_admin"}

    everyone = {username for username, *_rest in ORG_USERS}
    for viewer in ("supervisor", "sysadmin"):
        api = login(viewer)
        assert _usernames(api.get("/api/v1/person-scores", query_string=q)) == everyone
        assert api.get("/api/v1/person-scores/clerk", query_string=q).get_json()["score"] == 87.5
        assert _usernames(api.get("/api/v1/person-scores", query_string={**q, "department": "OFFICE"})) == office
    assert login("supervisor").get("/api/v1/person-scores", query_string={**q, "department": "NONE"}).status_code == 404


def test_the_head_is_the_departments_head_or_its_dept_head_member(app, login, records):
    """R-SUP-5 "their head": the department's head_id, or the office group dept_head held in it."""
    q = {"period": "2026-Q4"}
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        office = s.scalar(select(Department).where(Department.code == "OFFICE"))
        office.head_id = s.scalar(select(User.id).where(User.username == "fin_head"))  # heads OFFICE too now
        s.commit()
        s.close()
    assert login("fin_head").get("/api/v1/person-scores/clerk", query_string=q).status_code == 200
    # office_head no longer is OFFICE's head_id, but still holds the dept_head group there.
    assert login("office_head").get("/api/v1/person-scores/clerk", query_string=q).status_code == 200


def test_a_period_must_be_a_quarter_that_has_begun(login, records):
    clerk = login("clerk")
    assert clerk.get("/api/v1/person-scores/me", query_string={"period": "2026-11"}).status_code == 422
    assert clerk.get("/api/v1/person-scores", query_string={"period": "2027-Q2"}).status_code == 422
    # No period: the current quarter so far.
    assert clerk.get("/api/v1/person-scores/me").get_json()["period"]["label"] == "2026-Q4"


def test_the_page_lists_the_people_one_may_see_in_chinese_and_english(records, browser):  # noqa: F811
    """R-SUP-3, R-SUP-5: /performance/people lists name, department, figures and score, in
    Chinese by default and in English under ?lang=en; a clerk sees only their own row."""
    head = browser("office_head")
    zh = head.get("/performance/people?period=2026-Q4")
    assert zh.status_code == 200
    page = zh.get_data(as_text=True)
    assert "个人得分" in page and "办公室" in page and "按时完成" in page and "87.5" in page
    assert 'data-username="clerk"' in page and 'data-username="fin_head"' not in page
    en = head.get("/performance/people?period=2026-Q4&lang=en").get_data(as_text=True)
    assert "Scores per person" in en and "Done on time" in en and "Used the platform" in en and "87.5" in en
    assert "个人得分" not in en

    mine = browser("clerk").get("/performance/people?period=2026-Q4").get_data(as_text=True)
    assert 'data-username="clerk"' in mine and 'data-username="office_head"' not in mine
    assert browser("fin_head").get("/performance/people?period=2026-Q4&department=OFFICE").status_code == 403
