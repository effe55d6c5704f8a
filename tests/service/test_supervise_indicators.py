"""R-SUP-3, issue 18: the indicators as docs/indicators.md now defines them — work on documents is
use, document reviews are steps with a deadline, and the recorded security incidents (the security
procedure, security faults, inspection findings) count — each figure checked on records built by
hand with the clock frozen, and each drilled down to the same records through the API."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service import audit, definitions
from service.models import Department, InstanceStep, ProcessDefinition, ProcessInstance, User
from service.procedures.indicators import compute, due_elements, quarter
from tests.service.diagrams import script_process
from tests.service.documents_helpers import uploaded

Q4 = quarter("2026-Q4")


def z(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Records:
    """Instances and history rows of deployed processes, written with explicit times."""

    def __init__(self, s):
        self.s = s
        self.users = {u.username: u for u in s.scalars(select(User))}
        self.departments = {d.code: d for d in s.scalars(select(Department))}

    def instance(self, key: str, by: str, started: datetime, state: str = "running") -> ProcessInstance:
        d = self.s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                          .order_by(ProcessDefinition.version.desc()).limit(1))
        user = self.users[by]
        row = ProcessInstance(definition_id=d.id, process_key=key, version=d.version, started_by=user.id,
                              department_id=user.department_id, started_at=started, state=state,
                              engine_state="{}", serializer_version="1")
        self.s.add(row)
        self.s.flush()
        return row

    def step(self, row, element: str, when: datetime, by: str | None = None, data=None, task: str | None = None):
        self.s.add(InstanceStep(instance_id=row.id, definition_id=row.definition_id, element_id=element,
                                name=element, kind="UserTask" if by else "EndEvent",
                                task_id=task or f"{row.id}-{element}-{when.timestamp()}",
                                user_id=self.users[by].id if by else None, completed_at=when, data=data))
        self.s.flush()


@pytest.fixture
def session(app, org, frozen):
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        yield s
        s.close()


def test_usage_counts_people_who_filed_a_document(app, login, session):
    """§2: a person who only filed a document (a new document or version) used the platform."""
    uploaded(login("clerk"))
    office = compute(session, Q4.start, Q4.end).departments["OFFICE"]
    assert office["people"]["clerk"]["documents_filed"] == 1 and office["people"]["clerk"]["used"] is True
    assert office["people"]["office_head"]["used"] is False
    assert (office["used_users"], office["active_users"]) == (1, 3)
    assert office["usage_rate"] == pytest.approx(1 / 3)
    session.commit()  # end the read: SQLite has one writer, and the API writes the audit log
    people = login("supervisor").get("/api/v1/analytics/indicators/records",
                                     query_string={"kind": "people", "period": "2026-Q4"}).get_json()["items"]
    office_people = {p["who"]: p for p in people if p["department"] == "OFFICE"}
    assert set(office_people) == {"office_head", "office_admin", "clerk"}
    assert office_people["clerk"]["used"] is True and office_people["clerk"]["documents_filed"] == 1
    assert sum(p["used"] for p in office_people.values()) == office["used_users"]


def test_file_publication_reviews_have_a_deadline_and_count_for_timeliness(app, login, session, frozen):
    """§3: the reviews of file publication are steps with a due date; one done in time, one
    flagged overdue before it was done."""
    d = session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == "file_publication")
                       .order_by(ProcessDefinition.version.desc()).limit(1))
    # The diagram shipped in process_models/, as deployed:
    assert {"dept_head_review", "platform_review", "secrecy_review"} <= {
        element for deployment, element in due_elements(session, {d.deployment_id})}
    r = Records(session)
    first, second = (r.instance("file_publication", "clerk", z(2026, 11, 2)) for _ in range(2))
    r.step(first, "dept_head_review", z(2026, 11, 3), by="office_head", task="R1")
    frozen.current = z(2026, 11, 6)
    audit.record(session, "task_overdue", "task", "R2", detail={"instance": second.id, "element": "dept_head_review"})
    r.step(second, "dept_head_review", z(2026, 11, 7), by="office_head", task="R2")
    session.commit()
    frozen.current = z(2026, 12, 1, 1)
    office = compute(session, Q4.start, Q4.end).departments["OFFICE"]
    assert (office["due_tasks"], office["on_time_tasks"], office["late_tasks"]) == (2, 1, 1)
    assert office["timeliness_rate"] == 0.5
    session.commit()
    due = login("supervisor").get("/api/v1/analytics/indicators/records",
                                  query_string={"kind": "due", "period": "2026-Q4"}).get_json()["items"]
    assert sorted((i["task_id"], i["on_time"]) for i in due) == [("R1", True), ("R2", False)]


def test_approval_drill_down_lists_the_requests_decided(app, login, session):
    """§4: the requests behind the first-time and eventual pass rates."""
    r = Records(session)
    once, twice, refused = (r.instance("file_publication", "clerk", z(2026, 11, 2), state=st)
                            for st in ("completed", "completed", "running"))
    for row, decisions in ((once, ["approve"]), (twice, ["return", "approve"]), (refused, ["reject"])):
        for i, decision in enumerate(decisions):
            session.add(InstanceStep(instance_id=row.id, definition_id=row.definition_id, element_id="dept_head_review",
                                     name="审核", kind="UserTask", task_id=f"{row.id}-{i}",
                                     user_id=r.users["office_head"].id, completed_at=z(2026, 11, 3 + i),
                                     decision=decision))
    session.commit()
    office = compute(session, Q4.start, Q4.end).departments["OFFICE"]
    assert (office["submissions"], office["approval_pass_rate"]) == (3, pytest.approx(2 / 3))
    assert office["first_pass_rate"] == pytest.approx(1 / 3)
    session.commit()
    items = login("supervisor").get("/api/v1/analytics/indicators/records",
                                    query_string={"kind": "submissions", "period": "2026-Q4"}).get_json()["items"]
    assert sorted((i["instance_id"], i["passed"], i["first_pass"]) for i in items) == [
        (once.id, True, True), (twice.id, True, False), (refused.id, False, False)]


def test_security_incidents_include_the_procedure_security_faults_and_findings(app, login, session):
    """§5: an instance of the security incident procedure, a fault report marked 安全事件 and an
    inspection finding of the category security each count, per 100 accounts; a fault of another
    kind, a finding of another category and a refused registration do not."""
    definitions.deploy(session, None, [("security_incident.bpmn", script_process("security_incident", "done = True"))])
    session.flush()
    r = Records(session)
    r.instance("security_incident", "clerk", z(2026, 11, 5))
    r.step(r.instance("fault_report", "clerk", z(2026, 11, 6)), "report_fault", z(2026, 11, 6), by="clerk",
           data={"affected_area": "security", "symptom": "有人冒用账号"})
    r.step(r.instance("fault_report", "clerk", z(2026, 11, 7)), "report_fault", z(2026, 11, 7), by="clerk",
           data={"affected_area": "performance", "symptom": "慢"})
    finding = r.instance("issue_rectification", "supervisor", z(2026, 11, 8))
    r.step(finding, "record_problem", z(2026, 11, 8), by="supervisor",
           data={"department": "FIN", "category": "security", "problem": "共用账号"})
    other = r.instance("issue_rectification", "supervisor", z(2026, 11, 9))
    r.step(other, "record_problem", z(2026, 11, 9), by="supervisor", data={"department": "FIN", "category": "file"})
    refused = r.instance("issue_rectification", "clerk", z(2026, 11, 10), state="completed")
    r.step(refused, "record_problem", z(2026, 11, 10), by="clerk", data={"department": "FIN", "category": "security"})
    r.step(refused, "end_refused", z(2026, 11, 10))
    session.commit()

    result = compute(session, Q4.start, Q4.end)
    office, fin = result.departments["OFFICE"], result.departments["FIN"]
    assert (office["security_procedures"], office["security_faults"], office["security_findings"]) == (1, 1, 0)
    assert office["security_incidents"] == 2 and office["security_incident_rate"] == pytest.approx(200 / 3)
    assert (fin["security_findings"], fin["security_incidents"]) == (1, 1)
    assert fin["security_incident_rate"] == pytest.approx(50.0)  # 1 per 2 accounts
    assert office["people"]["clerk"]["security_incidents"] == 2
    assert result.departments["HQ"]["security_incidents"] == 0  # the inspector's department is not blamed
    session.commit()
    items = login("supervisor").get("/api/v1/analytics/indicators/records",
                                    query_string={"kind": "incidents", "period": "2026-Q4"}).get_json()["items"]
    assert sorted(i["kind"] for i in items) == ["fault", "finding", "procedure"]
    assert len(items) == result.platform["security_incidents"]
    fin_items = login("fin_admin").get("/api/v1/analytics/indicators/records",
                                       query_string={"kind": "incidents", "period": "2026-Q4"}).get_json()["items"]
    assert [(i["kind"], i["message"]) for i in fin_items] == [("finding", "共用账号")]
