"""The monthly process evaluation read by supervisors on its own pages (R-WF-4 "定期对工作流程进行评估和
优化", issue 18): a process whose step loops back (rework) and whose newer version is markedly slower
is evaluated by the monthly job; the evaluation holds the rework and version suggestions besides the
overdue one, and /analytics/evaluations shows them in Chinese and in English; a clerk is refused.

The history is made through the API on the frozen clock, as tests/service/test_evaluation.py does."""
from __future__ import annotations

import io
import re

from sqlalchemy import select

from service import scheduler
from service.models import ProcessEvaluation
from tests.service.flows import complete, only_task
from tests.service.studio_helpers import HEAD
from tests.service.test_pages import browser, text  # noqa: F401 - the signed-in page client fixture

KEY = "desk_review"


def _diagram(instructions: str) -> str:
    """start → 检查工位 (20 minutes to do it) → returned? back to 检查工位 : end."""
    return (HEAD + f'<bpmn:process id="{KEY}" name="工位复查" isExecutable="true"><bpmn:extensionElements>'
            '<spiffworkflow:properties><spiffworkflow:property name="name_en" value="Desk review" />'
            '</spiffworkflow:properties></bpmn:extensionElements><bpmn:startEvent id="start" />'
            '<bpmn:userTask id="check" name="检查工位"><bpmn:extensionElements>'
            f'<spiffworkflow:instructionsForEndUser>{instructions}</spiffworkflow:instructionsForEndUser>'
            '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" />'
            '<spiffworkflow:property name="name_en" value="Check the desk" />'
            '<spiffworkflow:property name="due" value="&quot;PT20M&quot;" /></spiffworkflow:properties>'
            '</bpmn:extensionElements></bpmn:userTask>'
            '<bpmn:exclusiveGateway id="returned" default="to_end" /><bpmn:endEvent id="end" />'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check" />'
            '<bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="returned" />'
            '<bpmn:sequenceFlow id="again" sourceRef="returned" targetRef="check">'
            '<bpmn:conditionExpression>decision == "return"</bpmn:conditionExpression></bpmn:sequenceFlow>'
            '<bpmn:sequenceFlow id="to_end" sourceRef="returned" targetRef="end" /></bpmn:process></bpmn:definitions>')


def _deploy(admin, instructions: str) -> None:
    r = admin.client.post("/api/v1/process-definitions",
                          data={"files": [(io.BytesIO(_diagram(instructions).encode()), f"{KEY}.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()


def _start(clerk, n: int) -> list[int]:
    return [clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()["id"] for _ in range(n)]


def _evaluated_december(app, login, frozen) -> ProcessEvaluation:
    """December 2026: version 1 done in 10 minutes, once returned and done again; version 2 (the
    redesign) takes 30 minutes, past its 20-minute deadline, every time. Then January's first run."""
    admin, clerk = login("sysadmin"), login("clerk")
    _deploy(admin, "请检查工位")
    first = _start(clerk, 3)
    frozen.advance(minutes=10)
    complete(clerk, only_task(clerk, instance_id=first[0]), {"decision": "return"})  # back to the same step
    for instance_id in first[1:]:
        complete(clerk, only_task(clerk, instance_id=instance_id), {"decision": "approve"})
    frozen.advance(minutes=10)
    complete(clerk, only_task(clerk, instance_id=first[0]), {"decision": "approve"})

    _deploy(admin, "请检查工位并拍照")  # version 2
    second = _start(clerk, 3)
    frozen.advance(minutes=30)
    scheduler.run_due(app)  # their deadlines pass
    for instance_id in second:
        complete(clerk, only_task(clerk, instance_id=instance_id), {"decision": "approve"})

    factory = app.extensions["inkless.db"]
    with app.test_request_context():
        s = factory()
        scheduler.ensure_daily_jobs(s)
        s.commit()
        s.close()
    frozen.advance(days=31)  # 2027-01-01: December is over
    scheduler.run_due(app)
    s = factory()
    (row,) = s.scalars(select(ProcessEvaluation).where(ProcessEvaluation.process_key == KEY)).all()
    s.close()
    return row


def test_rework_and_a_slower_version_are_suggested_and_supervisors_read_them_in_both_languages(
        app, login, browser, frozen):  # noqa: F811
    """R-WF-4: the monthly evaluation counts the loop back and compares the versions; the
    supervisor's evaluation pages show the suggestions in the reader's language."""
    row = _evaluated_december(app, login, frozen)
    assert row.period == "2026-12"
    (step,) = row.body["steps"]
    # 检查工位: version 1 four times at 10 min (one return, one pass again), version 2 three at 30 min
    assert (step["element_id"], step["count"], step["returns"], step["reentries"]) == ("check", 7, 1, 1)
    assert (step["median_s"], step["with_deadline"], step["late"], step["overdue_rate"]) == (600.0, 7, 3, 0.429)
    assert step["versions"] == {"1": {"count": 4, "median_s": 600.0}, "2": {"count": 3, "median_s": 1800.0}}
    by_code = {x["code"]: x for x in row.body["suggestions"]}
    assert set(by_code) == {"overdue", "rework", "version", "bottleneck"}
    assert (by_code["rework"]["share"], by_code["rework"]["cases"]) == (0.286, 7)  # (1 return + 1 again) / 7
    assert {k: by_code["version"][k] for k in ("old", "new", "old_median_s", "new_median_s")} == {
        "old": 1, "new": 2, "old_median_s": 600.0, "new_median_s": 1800.0}

    supervisor = browser("supervisor")
    r = supervisor.get("/analytics/evaluations")
    assert r.status_code == 200
    page = text(r)
    listed = re.search(rf'<tr data-process="{KEY}">(.*?)</tr>', page, re.S).group(1)
    assert "工位复查" in listed and "2026年12月" in listed and "<td>4</td>" in listed
    assert "检查工位：7 件中逾期 42.9%" in listed
    assert f'href="/analytics/evaluations/{KEY}"' in listed
    assert 'href="/analytics/evaluations" aria-current="page"' in page  # the analytics tabs

    page = text(supervisor.get(f"/analytics/evaluations/{KEY}"))
    suggestions = re.search(r'<ul id="suggestions">(.*?)</ul>', page, re.S).group(1)
    assert "步骤“检查工位”在 7 次中有 29% 被退回或返工" in suggestions
    assert "步骤“检查工位”在第 2 版比第 1 版更慢(中位数 30 分钟,此前 10 分钟)。" in suggestions
    assert 'data-code="overdue"' in suggestions and 'data-code="bottleneck"' in suggestions
    steps = re.search(r'<table class="data" id="evaluation-steps">(.*?)</table>', page, re.S).group(1)
    assert "<td>7</td>" in steps and "42.9%" in steps and "<td>1</td>" in steps
    versions = re.search(r'<table class="data" id="evaluation-versions">(.*?)</table>', page, re.S).group(1)
    assert "第 1 版" in versions and "第 2 版" in versions and "10 分钟" in versions and "30 分钟" in versions

    page = text(supervisor.get(f"/analytics/evaluations/{KEY}?month=2026-12&lang=en"))
    assert "Desk review" in page and "工位复查" not in page
    suggestions = re.search(r'<ul id="suggestions">(.*?)</ul>', page, re.S).group(1)
    assert "Step “Check the desk” was sent back or done again in 29% of 7 cases" in suggestions
    assert ("Step “Check the desk” takes longer in version 2 than in version 1 (median 30 min against 10 min)."
            in suggestions)
    assert "Step “Check the desk” was overdue in 43% of its 7 cases" in suggestions
    assert "Version 2: median" in page and "Overdue rate" in page
    listed = text(supervisor.get("/analytics/evaluations?lang=en"))
    assert "Check the desk: overdue in 42.9% of 7" in listed and "2026-12" in listed

    assert supervisor.get(f"/analytics/evaluations/{KEY}?month=2026-11").status_code == 404
    assert supervisor.get(f"/analytics/evaluations/{KEY}?month=December").status_code == 422
    assert supervisor.get("/analytics/evaluations/nothing_deployed").status_code == 404
    clerk = browser("clerk")
    assert clerk.get("/analytics/evaluations").status_code == 403
    assert clerk.get(f"/analytics/evaluations/{KEY}").status_code == 403
    assert browser().get("/analytics/evaluations").status_code == 302  # signed out: to the sign-in page
