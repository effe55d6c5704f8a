"""User feedback through the HTTP API (R-SUP-2): submitted → analysed and forwarded by the platform
management department (or answered and closed) → handled by the department within a time limit →
reply recorded → closed; an overdue department is reported to the supervision group."""
from __future__ import annotations

import pytest

from service.scheduler import run_due
from tests.service.flows import complete as _complete
from tests.service.flows import only_task as _only_task
from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

FEEDBACK = {"category": "suggestion", "subject": "审批意见支持常用语", "content": "希望审批时可以选择常用意见,减少重复输入。",
            "contact": "分机 8001"}
FORWARD = {"analysis": "属财务处审批模板问题,建议增加常用语", "triage_action": "forward", "department": "FIN",
           "time_limit": "P3D"}
HANDLED = {"handling": "已在财务审批模板中增加常用意见", "reply": "感谢建议,常用意见已上线。"}


def _submit(login, who="clerk"):
    api = login(who)
    r = api.post("/api/v1/process-instances", json={"process_key": "feedback"})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    task = _only_task(api, instance_id=instance_id)
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["category"]["oneOf"][0] == {"const": "problem", "title": "问题反馈"}
    _complete(api, task, FEEDBACK)
    return instance_id


def _triage(login, instance_id, data):
    api = login("platform")
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "triage_feedback"
    return _complete(api, task, data)


def test_feedback_forwarded_handled_and_answered(login):
    """R-SUP-2: the platform analyses and forwards; the department's administrator handles and replies."""
    instance_id = _submit(login)
    _triage(login, instance_id, FORWARD)
    # Only the responsible department's administrator gets it.
    assert login("office_admin").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0
    department = login("fin_admin")
    task = _only_task(department, instance_id=instance_id)
    assert task["element_id"] == "handle_feedback" and task["due_at"] is not None
    detail = department.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert detail["data"]["analysis"] == FORWARD["analysis"] and detail["data"]["content"] == FEEDBACK["content"]
    result = _complete(department, task, HANDLED)
    assert result["state"] == "completed" and "end_replied" in result["completed_elements"]
    assert [(h["element_id"], h["user"]) for h in result["history"] if h["kind"] == "UserTask"] == [
        ("submit_feedback", "clerk"), ("triage_feedback", "platform"), ("handle_feedback", "fin_admin")]


def test_feedback_answered_and_closed_by_the_platform(login):
    """R-SUP-2: feedback that needs no department is answered and closed at triage (a reply is required)."""
    instance_id = _submit(login)
    api = login("platform")
    task = _only_task(api, instance_id=instance_id)
    body = _complete(api, task, {"analysis": "已有此功能", "triage_action": "close"}, status=422)
    assert [d["field"] for d in body["details"]] == ["reply"]
    result = _complete(api, task, {"analysis": "已有此功能", "triage_action": "close",
                                   "reply": "审批页“常用意见”按钮即可选择。"})
    assert result["state"] == "completed" and "end_closed" in result["completed_elements"]
    assert "handle_feedback" not in result["completed_elements"]


@pytest.mark.parametrize("department, words", [("HQ", "没有在岗的部门管理员")])
def test_forwarding_to_a_department_nobody_can_act_for_is_sent_back(login, department, words):
    """R-SUP-2: feedback is only forwarded to an existing department with an administrator, so it never
    waits in nobody's list; otherwise the platform is asked to triage again."""
    instance_id = _submit(login)
    result = _triage(login, instance_id, dict(FORWARD, department=department))
    assert result["active_elements"] == ["triage_feedback"]
    task = _only_task(login("platform"), instance_id=instance_id)
    assert words in task["instructions"]
    _complete(login("platform"), task, FORWARD)
    assert _only_task(login("fin_admin"), instance_id=instance_id)["element_id"] == "handle_feedback"


def test_department_past_its_time_limit_is_reported_to_the_supervision_group(app, login, frozen):
    """R-SUP-2: the department must answer within the time limit; when it passes, the task is flagged
    overdue and the supervision group is told once, while the department keeps the task."""
    instance_id = _submit(login)
    _triage(login, instance_id, FORWARD)
    department = login("fin_admin")
    task = _only_task(department, instance_id=instance_id)
    assert task["due_at"].startswith("2026-12-04T01:00")

    frozen.advance(days=2, hours=23)
    assert run_due(app) == 0
    frozen.advance(hours=2)
    assert run_due(app) >= 1
    overdue = department.get("/api/v1/tasks", query_string={"overdue": True}).get_json()["items"]
    assert [t["id"] for t in overdue] == [task["id"]]
    supervisor = login("supervisor")
    escalations = [n for n in supervisor.get("/api/v1/notifications").get_json()["items"] if n["kind"] == "escalation"]
    assert len(escalations) == 1 and "审批意见支持常用语" in escalations[0]["message"]
    frozen.advance(days=5)
    assert run_due(app) == 0

    result = _complete(department, task, HANDLED)
    assert result["state"] == "completed"
    assert result["completed_elements"].count("handle_overdue") == 1
    assert {"notify_supervisors", "end_escalated", "end_replied"} <= set(result["completed_elements"])


@pytest.mark.parametrize("who", ["office_admin", "fin_head", "clerk"])
def test_only_the_responsible_departments_administrator_answers(login, who):
    """R-SUP-2, R-ACC-3: another department, the head or the submitter cannot answer in its place."""
    instance_id = _submit(login)
    _triage(login, instance_id, FORWARD)
    task = _only_task(login("fin_admin"), instance_id=instance_id)
    r = login(who).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": HANDLED})
    assert r.status_code == 403


def test_the_feedback_overview_counts_categories_times_and_open_items_per_department(login, browser, frozen):  # noqa: F811
    """R-SUP-2, R-WF-4 (issue 18): what users raise, taken together — per category received,
    answered and the time to answer; per responsible department what is open and overdue; the open
    items. A department administrator sees their department's; a clerk none."""
    answered = _submit(login)  # a suggestion, forwarded to FIN and answered five hours later
    _triage(login, answered, FORWARD)
    frozen.advance(hours=5)
    _complete(login("fin_admin"), _only_task(login("fin_admin"), instance_id=answered), HANDLED)

    closed = _submit(login)  # the platform answers this one at triage, two hours later
    frozen.advance(hours=2)
    api = login("platform")
    _complete(api, _only_task(api, instance_id=closed), {"analysis": "已有此功能", "triage_action": "close",
                                                         "reply": "审批页“常用意见”按钮即可选择。"})

    waiting = _submit(login)  # forwarded to FIN and still not answered four days later
    _triage(login, waiting, FORWARD)
    frozen.advance(days=4)
    supervisor = login("supervisor")
    r = supervisor.get("/api/v1/analytics/feedback", query_string={"period": "2026-12"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] == 3
    by_category = {c["key"]: c for c in body["categories"]}
    assert by_category["suggestion"]["name"] == "改进建议"
    assert (by_category["suggestion"]["received"], by_category["suggestion"]["answered"],
            by_category["suggestion"]["open"]) == (3, 2, 1)
    assert by_category["suggestion"]["median_hours"] == 3.5  # answered after 5 and after 2 hours
    fin = next(d for d in body["departments"] if d["key"] == "FIN")
    assert (fin["open"], fin["overdue"], fin["answered"]) == (1, 1, 1)
    assert [i["instance_id"] for i in body["open"]] == [waiting]
    assert body["open"][0]["overdue"] is True and body["open"][0]["category_name"] == "改进建议"

    office = login("office_admin").get("/api/v1/analytics/feedback", query_string={"period": "2026-12"}).get_json()
    assert office["total"] == 0 and office["open"] == []
    assert login("clerk").get("/api/v1/analytics/feedback").status_code == 403
    page = browser("supervisor").get("/analytics/feedback?period=2026-12")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "改进建议" in html and f'/requests/{waiting}"' in html
