"""Periodic process evaluation (R-WF-4 "定期对工作流程进行评估和优化", issue 18): a daily job writes,
once per month and process, an evaluation of the month before — per step count, median, overdue
rate, rework — with suggestions; supervisors read it through the API, designers in the studio."""
from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import select

from engine import clock
from service import scheduler
from service.models import ProcessEvaluation
from tests.service.flows import complete, only_task
from tests.service.studio_helpers import HEAD, create_model
from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

KEY = "desk_check"
DIAGRAM = (HEAD + f'<bpmn:process id="{KEY}" name="工位检查" isExecutable="true"><bpmn:startEvent id="start" />'
           '<bpmn:userTask id="check" name="检查工位"><bpmn:extensionElements>'
           '<spiffworkflow:instructionsForEndUser>请检查工位</spiffworkflow:instructionsForEndUser>'
           '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" />'
           '<spiffworkflow:property name="due" value="&quot;PT1H&quot;" /></spiffworkflow:properties>'
           '</bpmn:extensionElements></bpmn:userTask><bpmn:endEvent id="end" />'
           '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check" />'
           '<bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end" /></bpmn:process></bpmn:definitions>')


def test_the_monthly_evaluation_finds_an_overdue_step_and_designers_and_supervisors_read_it(app, login, browser,  # noqa: F811
                                                                                            frozen):
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(DIAGRAM.encode()), f"{KEY}.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    clerk = login("clerk")
    started = [clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()["id"] for _ in range(4)]
    for instance_id in started[:2]:  # on time
        complete(clerk, only_task(clerk, instance_id=instance_id), {})
    frozen.advance(hours=2)
    scheduler.run_due(app)  # the other two pass their deadline
    for instance_id in started[2:]:
        complete(clerk, only_task(clerk, instance_id=instance_id), {})

    factory = app.extensions["inkless.db"]
    with app.test_request_context():
        s = factory()
        scheduler.ensure_daily_jobs(s)
        s.commit()
        s.close()
    frozen.advance(days=31)  # 2027-01-01 11:00 Beijing: December is over
    scheduler.run_due(app)
    scheduler.run_due(app)  # the next day's run finds December evaluated already
    s = factory()
    rows = s.scalars(select(ProcessEvaluation).where(ProcessEvaluation.process_key == KEY)).all()
    s.close()
    assert [r.period for r in rows] == ["2026-12"]
    step = next(st for st in rows[0].body["steps"] if st["element_id"] == "check")
    assert (step["count"], step["with_deadline"], step["late"], step["overdue_rate"]) == (4, 4, 2, 0.5)

    supervisor = login("supervisor")
    r = supervisor.get("/api/v1/analytics/evaluations", query_string={"process_key": KEY})
    assert r.status_code == 200, r.get_json()
    (shown,) = r.get_json()["items"]
    overdue = [x for x in shown["suggestions"] if x["code"] == "overdue"]
    assert len(overdue) == 1 and "检查工位" in overdue[0]["text"] and "50%" in overdue[0]["text"]
    en = supervisor.get("/api/v1/analytics/evaluations", query_string={"process_key": KEY, "lang": "en"}).get_json()
    assert "overdue in 50% of its 4 cases" in en["items"][0]["suggestions"][0]["text"]
    assert login("clerk").get("/api/v1/analytics/evaluations", query_string={"process_key": KEY}).status_code == 403

    create_model(admin, KEY, department="PLATFORM")
    page = browser("office_admin").get(f"/studio/{KEY}").get_data(as_text=True)
    assert "检查工位" in page and "50%" in page and 'id="suggestions"' in page
    assert clock.now() - rows[0].created_at < timedelta(days=1)
