"""The account application procedure through the HTTP API (R-ACC-1, R-ACC-2, R-WF-2)."""
from __future__ import annotations

import pytest

from tests.service.flows import only_task as _only_task

APPLICATION = {
    "full_name": "马小云",
    "username": "maxy",
    "phone": "13800000000",
    "email": "maxy@example.org",
    "department": "OFFICE",
    "post": "档案管理员",
    "roles": ["user"],
    "groups": ["inspector"],
    "reason": "新入职,负责档案管理",
}


def _start_and_fill(login, applicant="office_admin", data=None):
    api = login(applicant)
    r = api.post("/api/v1/process-instances", json={"process_key": "account_application", "business_key": "ACC-1"})
    assert r.status_code == 201, r.get_json()
    instance = r.get_json()
    assert instance["state"] == "running"
    assert instance["active_elements"] == ["fill_application"]
    task = _only_task(api, instance_id=instance["id"])
    assert task["element_id"] == "fill_application"
    detail = api.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert detail["form"]["properties"]["full_name"]["title"]
    r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data or APPLICATION})
    assert r.status_code == 200, r.get_json()
    return instance["id"]


def _decide(login, who, instance_id, element_id, decision, opinion=""):
    api = login(who)
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == element_id
    r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": decision, "opinion": opinion}})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_two_level_approval_creates_account_that_can_sign_in(login, client):
    """R-ACC-1, R-ACC-2: department head then platform approve; the account exists with the granted roles."""
    instance_id = _start_and_fill(login)
    # The head of the department named in the form reviews first, not the platform.
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0
    _decide(login, "office_head", instance_id, "dept_head_review", "approve", "信息属实")
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert result["state"] == "completed"
    assert "end_approved" in result["completed_elements"]
    secrets = result["one_time_secrets"]
    assert secrets and secrets[0]["username"] == "maxy"
    password = secrets[0]["password"]

    # The initial password is shown once: it is in no stored form.
    detail = login("platform").get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert password not in str(detail)
    assert "one_time_secrets" not in detail or not detail["one_time_secrets"]

    r = client.post("/api/v1/auth/token", json={"username": "maxy", "password": password})
    assert r.status_code == 200
    users = login("office_admin").get("/api/v1/users").get_json()["items"]
    new = next(u for u in users if u["username"] == "maxy")
    assert new["role"] == "user" and new["groups"] == ["inspector"] and new["must_change_password"] is True

    history = detail["history"]
    decisions = [(h["element_id"], h["user"], h["decision"]) for h in history if h["decision"]]
    assert decisions == [("dept_head_review", "office_head", "approve"), ("platform_review", "platform", "approve")]
    assert history[0]["element_id"] == "start"


def test_department_head_returns_application_with_reason_then_amended_and_approved(login):
    """R-ACC-2, R-WF-2: a return carries a mandatory reason; the applicant amends and resubmits."""
    instance_id = _start_and_fill(login)
    api = login("office_head")
    task = _only_task(api, instance_id=instance_id)
    r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "return"}})
    assert r.status_code == 422
    assert any(d["field"] == "opinion" for d in r.get_json()["details"])
    _decide(login, "office_head", instance_id, "dept_head_review", "return", "岗位填写不准确")

    applicant = login("office_admin")
    task = _only_task(applicant, instance_id=instance_id)
    assert task["element_id"] == "amend_application"
    detail = applicant.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert detail["data"]["return_reason"] == "岗位填写不准确"
    amended = dict(APPLICATION, post="综合档案管理员", action="resubmit")
    r = applicant.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": amended})
    assert r.status_code == 200, r.get_json()

    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert result["state"] == "completed"
    opinions = [(h["element_id"], h["decision"], h["opinion"]) for h in result["history"] if h["decision"]]
    assert opinions[0] == ("dept_head_review", "return", "岗位填写不准确")
    assert len(opinions) == 3


def test_final_review_rejects(login):
    """R-ACC-2: the platform's final review can reject; no account is created."""
    instance_id = _start_and_fill(login)
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    result = _decide(login, "platform", instance_id, "platform_review", "reject", "不符合最小权限原则")
    assert result["state"] == "completed"
    assert "end_rejected" in result["completed_elements"]
    assert "create_account_task" not in result["completed_elements"]
    users = login("sysadmin").get("/api/v1/users", query_string={"limit": 500}).get_json()["items"]
    assert "maxy" not in {u["username"] for u in users}


def test_returned_application_withdrawn(login):
    """R-ACC-2: after a return the applicant may withdraw instead of resubmitting."""
    instance_id = _start_and_fill(login)
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    _decide(login, "platform", instance_id, "platform_review", "return", "请补充联系方式")
    applicant = login("office_admin")
    task = _only_task(applicant, instance_id=instance_id)
    r = applicant.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": dict(APPLICATION, action="withdraw")})
    assert r.status_code == 200
    assert r.get_json()["state"] == "completed"
    assert "end_withdrawn" in r.get_json()["completed_elements"]


@pytest.mark.parametrize("who", ["clerk", "fin_head", "fin_admin", "supervisor"])
def test_wrong_user_or_department_cannot_complete_review(login, who):
    """R-ACC-3, R-SEC-10: only the head of the applicant's department may do the first review."""
    instance_id = _start_and_fill(login)
    task = _only_task(login("office_head"), instance_id=instance_id)
    r = login(who).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
    assert r.status_code == 403
    assert r.get_json()["code"] == "forbidden"


def test_invalid_form_data_names_the_field(login):
    """R-ACC-1: the application form is validated on the server; 422 names the field."""
    api = login("office_admin")
    instance = api.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    task = _only_task(api, instance_id=instance["id"])
    bad = dict(APPLICATION, username="X!")
    del bad["post"]
    r = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": bad})
    assert r.status_code == 422
    body = r.get_json()
    fields = {d["field"] for d in body["details"]}
    assert {"username", "post"} <= fields
    assert "岗位" in body["details"][[d["field"] for d in body["details"]].index("post")]["message"]
    # Nothing was committed: the task is still open.
    assert _only_task(api, instance_id=instance["id"])["id"] == task["id"]


def test_task_completed_twice_answers_409(login):
    instance_id = _start_and_fill(login)
    api = login("office_head")
    task = _only_task(api, instance_id=instance_id)
    first = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
    assert first.status_code == 200
    again = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
    assert again.status_code == 409
