"""R-SUP-3: the four indicators on a hand-made data set, answers worked out by hand from the
definitions in docs/indicators.md (section numbers below refer to it).

The data set is written straight into the tables (users, deployments, instances, instance steps,
notifications) and the audit log, with explicit times around the fourth quarter of 2026:
P = [2026-10-01 00:00, 2027-01-01 00:00) Beijing time = [2026-09-30 16:00Z, 2026-12-31 16:00Z).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from sqlalchemy import select

from engine import clock
from service import audit
from service.models import (
    Department,
    Deployment,
    DeploymentFile,
    InstanceStep,
    Notification,
    ProcessDefinition,
    ProcessInstance,
    User,
)
from service.procedures.indicators import (
    compute,
    compute_indicators,
    period_from,
    previous_quarter,
    quarter,
    reference_score,
)
from service.services import ServiceFailure

CST = timezone(timedelta(hours=8))
Q4 = quarter("2026-Q4")


def z(*args) -> datetime:
    """A UTC moment."""
    return datetime(*args, tzinfo=UTC)


def _diagram(due_on_fill: bool) -> str:
    """fill, review (approval) and sign; review and sign have a due date, fill only in version 2."""
    fill_due = '<spiffworkflow:property name="due" value="&quot;P3D&quot;" />' if due_on_fill else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs" targetNamespace="http://inkless">
  <bpmn:process id="office_work" isExecutable="true">
    <bpmn:userTask id="fill"><bpmn:extensionElements><spiffworkflow:properties>{fill_due}
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
    <bpmn:userTask id="review"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="approval" value="true" />
      <spiffworkflow:property name="due" value="&quot;P2D&quot;" />
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
    <bpmn:userTask id="sign"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="due" value="&quot;P1D&quot;" />
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>"""


class DataSet:
    """Builds the hand-made records inside one session; times are given explicitly."""

    def __init__(self, s, frozen):
        self.s, self.frozen = s, frozen
        self.users: dict[str, User] = {}
        self.departments: dict[str, Department] = {}

    def department(self, code):
        d = Department(code=code, name=code.title())
        self.s.add(d)
        self.s.flush()
        self.departments[code] = d
        return d

    def user(self, username, department, created=None, active=True, head=False):
        created = created or z(2026, 1, 1)
        u = User(username=username, full_name=username.upper(), password_hash="x",
                 department_id=self.departments[department].id, active=active, created_at=created)
        self.s.add(u)
        self.s.flush()
        if head:
            self.departments[department].head_id = u.id
        self.users[username] = u
        return u

    def audit(self, when, action, object_type, object_id, actor=None, detail=None):
        self.frozen.current = when
        audit.record(self.s, action, object_type, object_id, actor_id=self.users[actor].id if actor else None,
                     detail=detail)

    def definition(self, version, due_on_fill):
        deployment = Deployment()
        deployment.files = [DeploymentFile(name="office_work.bpmn", kind="bpmn", content=_diagram(due_on_fill))]
        self.s.add(deployment)
        self.s.flush()
        definition = ProcessDefinition(key="office_work", version=version, name="办公", file="office_work.bpmn",
                                       deployment_id=deployment.id)
        self.s.add(definition)
        self.s.flush()
        return definition

    def instance(self, definition, started_at, by=None, incidents=(), state="running", key="office_work"):
        starter = self.users[by] if by else None
        row = ProcessInstance(definition_id=definition.id, process_key=key, version=definition.version, state=state,
                              started_by=starter.id if starter else None,
                              department_id=starter.department_id if starter else None,
                              started_at=started_at, engine_state="{}", serializer_version="1.5",
                              incidents=[{"element": "x", "kind": kind, "line": None, "message": "m", "at": at}
                                         for kind, at in incidents])
        self.s.add(row)
        self.s.flush()
        return row

    def step(self, instance, element, task_id, when, by=None, decision=None, kind="UserTask", data=None):
        self.s.add(InstanceStep(instance_id=instance.id, element_id=element, name=element, kind=kind,
                                task_id=task_id, user_id=self.users[by].id if by else None,
                                completed_at=when, decision=decision, data=data))

    def overdue(self, task_id, when, instance, notified=()):
        """The deadline job fired: audit `task_overdue`, and an overdue notice to each candidate."""
        self.audit(when, "task_overdue", "task", task_id, detail={"instance": instance.id, "element": "x"})
        for username in notified:
            self.s.add(Notification(user_id=self.users[username].id, kind="overdue", title="x",
                                    instance_id=instance.id, task_id=task_id, created_at=when))

    def login_failures(self, username, first, count, every=timedelta(minutes=1)):
        for i in range(count):
            self.audit(first + i * every, "login_failed", "user", username,
                       actor=username if username in self.users else None)


@pytest.fixture
def frozen():
    fake = clock.FrozenClock(z(2026, 1, 1))
    clock.set_provider(fake)
    yield fake
    clock.set_provider(None)


@pytest.fixture
def data(app, frozen):
    s = app.extensions["inkless.db"]()
    d = DataSet(s, frozen)
    with app.test_request_context():
        for code in ("ALPHA", "BETA", "EMPTY"):
            d.department(code)
        # §1 population: who held an active account during P
        d.user("a_head", "ALPHA", head=True)
        for name in ("a1", "a2", "a3"):
            d.user(name, "ALPHA")
        d.user("a_left", "ALPHA", active=False)  # deactivated during P: counted
        d.user("a_old", "ALPHA", active=False)  # deactivated before P: not counted
        d.user("a_new", "ALPHA", created=z(2027, 1, 5))  # created after P: not counted
        d.user("b_head", "BETA", head=True)
        d.user("b1", "BETA")
        d.user("b_ghost", "BETA", active=False)  # inactive with no deactivation record: not counted
        d.audit(z(2026, 9, 1), "account_deactivated", "user", d.users["a_old"].id)
        d.audit(z(2026, 11, 10), "account_deactivated", "user", d.users["a_left"].id)

        v1, v2 = d.definition(1, due_on_fill=False), d.definition(2, due_on_fill=True)
        i1 = d.instance(v1, z(2026, 10, 10), by="a1", state="completed")
        i2 = d.instance(v1, z(2026, 9, 20), by="a2")  # started before P
        i3 = d.instance(v2, z(2026, 11, 1), by="b1", state="completed")
        i4 = d.instance(v1, z(2026, 10, 2), state="completed")  # started by the platform (timer)
        i5 = d.instance(v1, z(2026, 10, 5), by="a_left", incidents=[
            ("forbidden", "2026-10-06T08:00:00+00:00"), ("script", "2026-10-07T08:00:00+00:00")])
        d.instance(v1, z(2026, 8, 1), by="b_head", incidents=[
            ("forbidden", "2026-09-30T15:59:59+00:00"),  # a second before P
            ("forbidden", "2026-12-31T15:59:59.500000+00:00")])  # half a second before its end
        i7 = d.instance(v1, z(2026, 10, 3), incidents=[("forbidden", "2026-10-04T00:00:00+00:00")])

        # Steps. T-numbers are task ids; (due) marks elements with a due date in that version.
        d.step(i1, "start", "S1", z(2026, 10, 10))  # not a user task: no user
        d.step(i1, "review", "T1", z(2026, 10, 11), by="a_head", decision="approve")  # (due) on time
        d.overdue("T2", z(2026, 10, 19), i1, notified=["a_head"])
        d.step(i1, "sign", "T2", z(2026, 10, 20), by="a_head")  # (due) late
        d.step(i2, "fill", "T14", z(2026, 10, 15), by="a2")  # v1 fill: no due date
        d.overdue("T6", z(2026, 9, 28), i2, notified=["a3"])
        d.step(i2, "sign", "T6", z(2026, 9, 29), by="a3")  # before P
        d.overdue("T7", z(2026, 9, 28, 12), i2, notified=["a1"])
        d.step(i2, "sign", "T7", z(2026, 10, 2), by="a1")  # (due) flagged in Q3, completed in P: late
        d.overdue("T10", z(2026, 10, 25), i2, notified=["a2"])
        d.step(i2, "review", "T10", z(2026, 10, 26), by="a2", decision="reject")  # (due) late
        d.step(i2, "review", "T13", z(2026, 9, 25), by="a_head", decision="approve")  # before P
        d.step(i3, "fill", "T5", z(2026, 11, 1, 2), by="b1")  # v2 fill: (due) on time
        d.step(i3, "review", "T3", z(2026, 11, 2), by="b_head", decision="return")  # (due) on time
        d.overdue("T4", z(2026, 11, 4), i3, notified=["b_head"])
        d.step(i3, "review", "T4", z(2026, 11, 5), by="b_head", decision="approve")  # (due) late
        d.step(i4, "review", "T12", z(2026, 10, 3), by="a_head", decision="approve")  # (due) on time
        # Flagged overdue in P and still not done at its end (§3 b):
        d.overdue("T8", z(2026, 12, 20), i1, notified=["a3", "b1"])  # offered to two departments
        d.overdue("T9", z(2026, 12, 30), i1, notified=["a1"])
        d.step(i1, "sign", "T9", z(2027, 1, 3), by="a1")  # completed after P: counts in P as overdue
        d.overdue("T11", z(2026, 12, 1), i5)  # nobody to notify: the platform total only

        # §5 security: sign-in failure bursts (Beijing days) …
        d.login_failures("a3", z(2026, 11, 3, 1), 5)  # a burst
        d.login_failures("a3", z(2026, 11, 4, 1), 4)  # four are not
        d.login_failures("b1", z(2026, 11, 10, 15, 50), 3)  # 23:50–23:52 Beijing time …
        d.login_failures("b1", z(2026, 11, 10, 16, 10), 3)  # … and 00:10 the next day: no burst
        d.login_failures("b1", z(2026, 12, 5, 2), 5)  # a burst
        d.login_failures("nobody", z(2026, 10, 20, 3), 7)  # unknown username: the platform's
        d.login_failures("a1", z(2026, 9, 30, 10), 5)  # 18:00 Beijing time on 30 September: before P
        d.login_failures("a1", z(2026, 9, 30, 16), 5)  # 00:00 on 1 October: in P
        s.commit()
    yield {"session": s, "i7": i7}
    s.close()


def test_usage_rate_counts_people_who_completed_a_task_or_started_an_instance(data):
    """§2: used / active users, over the population of §1."""
    result = compute_indicators(data["session"], Q4.start, Q4.end)
    alpha, beta, empty = result["ALPHA"], result["BETA"], result["EMPTY"]
    assert set(alpha["people"]) == {"a_head", "a1", "a2", "a3", "a_left"}
    assert set(beta["people"]) == {"b_head", "b1"}
    assert (alpha["used_users"], alpha["active_users"], alpha["usage_rate"]) == (4, 5, 0.8)
    assert (beta["used_users"], beta["active_users"], beta["usage_rate"]) == (2, 2, 1.0)
    people = alpha["people"]
    assert people["a3"]["used"] is False  # only a task before P, and an overdue notice
    assert (people["a_head"]["tasks_completed"], people["a_head"]["instances_started"]) == (3, 0)
    assert (people["a1"]["tasks_completed"], people["a1"]["instances_started"]) == (1, 1)
    assert (people["a2"]["tasks_completed"], people["a2"]["instances_started"]) == (2, 0)
    assert (people["a_left"]["tasks_completed"], people["a_left"]["instances_started"]) == (0, 1)
    # A department without anyone: no rate rather than 0 (zero denominator).
    assert (empty["active_users"], empty["usage_rate"], empty["reference_score"]) == (0, None, None)


def test_timeliness_rate_counts_due_tasks_completed_on_time(data):
    """§3: on time / (due tasks completed in P + due tasks flagged overdue in P and not done by its end)."""
    s = data["session"]
    result = compute(s, Q4.start, Q4.end)
    alpha, beta = result.departments["ALPHA"], result.departments["BETA"]
    # ALPHA: completed T1 T12 (on time), T2 T7 T10 (late); open overdue T8 (a3), T9 (a1)
    assert (alpha["due_tasks"], alpha["on_time_tasks"], alpha["late_tasks"], alpha["overdue_open_tasks"]) == (7, 2, 3, 2)
    assert alpha["timeliness_rate"] == pytest.approx(2 / 7)
    # BETA: T5 (v2 fill has a due date) and T3 on time, T4 late; T8 also went to b1
    assert (beta["due_tasks"], beta["on_time_tasks"], beta["late_tasks"], beta["overdue_open_tasks"]) == (4, 2, 1, 1)
    assert beta["timeliness_rate"] == 0.5
    # The platform counts T8 once and T11, which nobody was told about.
    assert (result.platform["due_tasks"], result.platform["on_time_tasks"]) == (11, 4)
    assert result.platform["timeliness_rate"] == pytest.approx(4 / 11)
    people = {**alpha["people"], **beta["people"]}
    assert {u: (p["due_tasks"], p["on_time_tasks"]) for u, p in people.items()} == {
        "a_head": (3, 2), "a1": (2, 0), "a2": (1, 0), "a3": (1, 0), "a_left": (0, 0), "b_head": (2, 1), "b1": (2, 1)}
    assert people["a_head"]["timeliness_rate"] == pytest.approx(2 / 3)
    assert people["a_left"]["timeliness_rate"] is None  # no due task: no rate


def test_approval_pass_rate_counts_requests_passed_at_last_and_the_first_time(data):
    """§4: of the requests decided in P (last decision in P, and rejected or ended), those approved
    at last (eventual pass) and those approved without a return or rejection (first-time pass), by
    the department (and person) that started them. The decisions themselves are counted too."""
    result = compute(data["session"], Q4.start, Q4.end)
    alpha, beta = result.departments["ALPHA"], result.departments["BETA"]
    # i1 approved at once (a1); i2 rejected (a2): decided although it still runs
    assert (alpha["submissions"], alpha["submissions_passed"], alpha["submissions_first_pass"]) == (2, 1, 1)
    assert (alpha["approval_pass_rate"], alpha["first_pass_rate"]) == (0.5, 0.5)
    # i3 returned, then approved (b1): passed, not the first time
    assert (beta["submissions"], beta["submissions_passed"], beta["submissions_first_pass"]) == (1, 1, 0)
    assert (beta["approval_pass_rate"], beta["first_pass_rate"]) == (1.0, 0.0)
    # i4 (timer-started, approved at once) counts only for the platform.
    assert (result.platform["submissions"], result.platform["submissions_passed"],
            result.platform["submissions_first_pass"]) == (4, 3, 2)
    assert (alpha["approval_decisions"], alpha["approvals_passed"], alpha["approvals_rejected"]) == (2, 1, 1)
    assert (beta["approval_decisions"], beta["approvals_passed"], beta["approvals_returned"]) == (2, 1, 1)
    assert alpha["people"]["a1"]["approval_pass_rate"] == 1.0
    assert alpha["people"]["a2"]["approval_pass_rate"] == 0.0
    assert alpha["people"]["a_head"]["approval_pass_rate"] is None  # decided, but submitted nothing
    assert (beta["people"]["b1"]["approval_pass_rate"], beta["people"]["b1"]["first_pass_rate"]) == (1.0, 0.0)


def test_a_request_still_under_way_is_not_decided(data, frozen):
    """§4: a request returned (or approved at one level) whose instance still runs has no outcome yet."""
    s = data["session"]
    d = DataSet(s, frozen)
    d.users = {u.username: u for u in s.scalars(select(User))}
    definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.version == 1))
    waiting = d.instance(definition, z(2026, 11, 20), by="a3")
    d.step(waiting, "review", "W1", z(2026, 11, 21), by="a_head", decision="return")
    s.flush()
    alpha = compute(s, Q4.start, Q4.end).departments["ALPHA"]
    assert alpha["submissions"] == 2 and alpha["approval_decisions"] == 3
    s.rollback()


def test_security_incident_rate_per_hundred_active_users(data):
    """§5: sign-in failure bursts (≥5 for one username on one Beijing day) + sandbox refusals."""
    result = compute(data["session"], Q4.start, Q4.end)
    alpha, beta = result.departments["ALPHA"], result.departments["BETA"]
    assert (alpha["login_bursts"], alpha["forbidden_incidents"], alpha["security_incidents"]) == (2, 1, 3)
    assert alpha["security_incident_rate"] == pytest.approx(60.0)  # 3 per 5 users
    assert (beta["login_bursts"], beta["forbidden_incidents"], beta["security_incidents"]) == (1, 1, 2)
    assert beta["security_incident_rate"] == pytest.approx(100.0)
    assert (result.platform["login_bursts"], result.platform["forbidden_incidents"]) == (4, 3)
    assert result.platform["security_incident_rate"] == pytest.approx(100.0)  # 7 per 7 users
    people = {**alpha["people"], **beta["people"]}
    assert {u: p["security_incidents"] for u, p in people.items() if p["security_incidents"]} == {
        "a1": 1, "a3": 1, "a_left": 1, "b1": 1, "b_head": 1}
    assert people["a1"]["security_incident_rate"] is None  # no per-person rate
    assert result.departments["EMPTY"]["security_incident_rate"] is None


def test_reference_score_weighs_the_four_indicators(data):
    """§6: 30 usage + 30 timeliness + 20 approval + 20 security, missing indicators left out."""
    result = compute(data["session"], Q4.start, Q4.end)
    alpha = result.departments["ALPHA"]
    expected = 100 * (30 * Fraction(4, 5) + 30 * Fraction(2, 7) + 20 * Fraction(1, 2) + 20 * 0) / 100
    assert alpha["reference_score"] == round(float(expected), 1) == 42.6
    assert result.departments["BETA"]["reference_score"] == 65.0  # 30·1 + 30·0.5 + 20·1 + 20·0
    assert reference_score({"usage_rate": 1.0, "timeliness_rate": None, "approval_pass_rate": None,
                            "security_incident_rate": 10.0}) == pytest.approx(100 * (30 + 20 * 0.5) / 50)
    assert reference_score({"usage_rate": None, "timeliness_rate": None, "approval_pass_rate": None,
                            "security_incident_rate": None}) is None
    assert "平台使用率 80.0%(4/5 人)" in alpha["summary"]
    assert "流程审批通过率 50.0%(1/2 件,一次通过率 50.0%)" in alpha["summary"]


def test_a_period_without_records_has_no_rates(data):
    """Zero denominators give None, never 0 or a division error."""
    result = compute(data["session"], quarter("2025-Q1").start, quarter("2025-Q1").end)
    for figures in [*result.departments.values(), result.platform]:
        assert figures["active_users"] == 0
        assert figures["usage_rate"] is figures["timeliness_rate"] is figures["approval_pass_rate"] is None
        assert figures["security_incident_rate"] is None


def test_bounds_are_half_open(data):
    """An event at the period's first instant is in it; one at its end is in the next period."""
    s = data["session"]
    q1 = quarter("2027-Q1")
    first = compute(s, q1.start, q1.end).departments["ALPHA"]["people"]["a1"]
    assert first["tasks_completed"] == 1  # T9 on 3 January
    # The half-second-before-the-end refusal (BETA) is in Q4, the one a second before Q4 is not.
    assert compute(s, Q4.start, Q4.end).departments["BETA"]["forbidden_incidents"] == 1
    q3 = quarter("2026-Q3")
    assert compute(s, q3.start, q3.end).departments["BETA"]["forbidden_incidents"] == 1


def test_quarters_are_beijing_time():
    assert quarter("2026-Q4").start == datetime(2026, 10, 1, tzinfo=CST) == z(2026, 9, 30, 16)
    assert quarter("2026-Q4").end == datetime(2027, 1, 1, tzinfo=CST)
    assert quarter("2027-Q1").end == datetime(2027, 4, 1, tzinfo=CST)
    assert quarter("2026-Q4").name == "2026年第4季度"
    # The quarter that has just ended: at midnight on 1 January it is the fourth.
    assert previous_quarter(datetime(2027, 1, 1, tzinfo=CST)).label == "2026-Q4"
    assert previous_quarter(datetime(2026, 12, 31, 23, 59, tzinfo=CST)).label == "2026-Q3"
    assert previous_quarter(z(2026, 12, 31, 16, 0, 1)).label == "2026-Q4"


def test_period_parameters():
    now = datetime(2027, 2, 10, 10, tzinfo=CST)
    assert period_from({}, now).label == "2026-Q4"
    assert period_from({"period": "2026-Q2"}, now).end == datetime(2026, 7, 1, tzinfo=CST)
    custom = period_from({"start": "2026-11-01", "end": "2026-12-01"}, now)
    assert (custom.start, custom.end) == (datetime(2026, 11, 1, tzinfo=CST), datetime(2026, 12, 1, tzinfo=CST))
    assert custom.label == "2026-11-01/2026-11-30"
    partial = period_from({"period": "2027-Q1"}, now)
    assert partial.end == now and "截至" in partial.name
    for bad in ({"period": "2026-Q5"}, {"period": "2027-Q2"}, {"start": "2026-11-01"},
                {"start": "2026-12-01", "end": "2026-11-01"}, {"start": "soon", "end": "2026-11-01"}):
        with pytest.raises(ServiceFailure):
            period_from(bad, now)
