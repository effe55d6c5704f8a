"""The start page offers what the user may start, by category, with search; a clerk withdraws
their own request while no reviewer has decided (issue 17, R-WF-2)."""
from __future__ import annotations

import re

from tests.service import test_pages
from tests.service.test_pages import _decide, _fill_application, text

browser = test_pages.browser  # the signed-in people of the page tests


def _headings(page: str) -> list[str]:
    return re.findall(r'<h[23][^>]*>([^<]+)</h[23]>', page)


def test_the_start_page_offers_only_what_the_user_may_start_grouped_by_category(browser):
    """R-WF-2: a clerk is not offered 季度考核 (supervisors) or 权限定期复核 (the platform); starting
    one anyway is refused before anything is created."""
    clerk = browser("clerk")
    page = text(clerk.get("/start"))
    names = _headings(page)
    assert "账号申请" in names and "故障报告与处理" in names
    assert "季度考核" not in names and "权限定期复核" not in names
    # Categories the built-in diagrams name, in order; each process under its own.
    assert names.index("账号与权限") < names.index("账号申请") < names.index("运维保障") < names.index("故障报告与处理")
    r = clerk.post("/start/quarterly_assessment", {"business_key": ""})
    assert r.status_code == 403
    assert "已发起" not in text(r)
    assert "季度考核" not in text(clerk.get("/requests"))
    # A supervisor is offered the assessment; the platform management department the review.
    assert "季度考核" in _headings(text(browser("supervisor").get("/start")))
    assert "权限定期复核" in _headings(text(browser("platform").get("/start")))


def test_the_start_page_searches_by_name(browser):
    clerk = browser("clerk")
    names = _headings(text(clerk.get("/start?q=故障")))
    assert "故障报告与处理" in names and "账号申请" not in names
    page = text(clerk.get("/start?q=nothing-like-this"))
    assert "没有与" in page and "nothing-like-this" in page


def _rows(app, model, *where):
    from sqlalchemy import select

    with app.app_context():
        from service import db

        s = db.session()
        return s.scalars(select(model).where(*where)).all()


def test_the_clerk_withdraws_a_request_before_the_head_decides(app, browser):
    """R-WF-2 (issue 17): the initiator withdraws with a reason while no reviewer has decided; the
    instance ends as withdrawn, the head's task goes and their notice is read, the audit and the
    timeline keep who and why."""
    from service.models import AuditEvent, Notification, OpenTask, ProcessInstance

    clerk = browser("clerk")
    task_url = _fill_application(clerk)
    (row,) = _rows(app, ProcessInstance)
    head_notices = _rows(app, Notification, Notification.instance_id == row.id, Notification.read_at.is_(None))
    assert head_notices and _rows(app, OpenTask, OpenTask.instance_id == row.id)
    url = f"/requests/{row.id}"
    page = text(clerk.get(url))
    assert "撤回申请" in page and 'name="reason"' in page
    # Someone else may not; without a reason the page says so beside the field.
    assert browser("office_head").post(f"{url}/withdraw", {"reason": "不是我的"}).status_code in (403, 404)
    r = clerk.post(f"{url}/withdraw", {"reason": "  "})
    assert r.status_code == 422 and "请说明撤回申请的理由。" in text(r)
    r = clerk.post(f"{url}/withdraw", {"reason": "岗位调整，不再需要账号"})
    assert r.status_code == 302
    page = text(clerk.get(r.headers["Location"]))
    assert "您的申请已撤回。" in page and "已撤回" in page
    assert "申请人撤回" in page and "岗位调整，不再需要账号" in page
    assert "撤回申请" not in page  # no second withdraw
    (row,) = _rows(app, ProcessInstance)
    assert row.state == "withdrawn" and row.ended_at is not None
    assert _rows(app, OpenTask, OpenTask.instance_id == row.id) == []
    assert _rows(app, Notification, Notification.instance_id == row.id, Notification.read_at.is_(None)) == []
    (event,) = _rows(app, AuditEvent, AuditEvent.action == "instance_withdrawn")
    assert event.detail == {"reason": "岗位调整，不再需要账号"} and event.object_id == str(row.id)
    # It is among the finished requests, not the running ones.
    assert f"#{row.id}" in text(clerk.get("/requests?state=finished"))
    assert f"#{row.id}" not in text(clerk.get("/requests?state=running"))
    assert task_url


def test_no_withdraw_once_a_reviewer_has_approved(app, browser, login):
    """R-WF-2: after the head's approval the request is no longer the clerk's to take back (API and page)."""
    from service.models import ProcessInstance

    clerk = browser("clerk")
    _fill_application(clerk)
    (row,) = _rows(app, ProcessInstance)
    api = login("clerk")
    assert api.post(f"/api/v1/process-instances/{row.id}/withdraw", json={}).status_code == 422
    assert _decide(browser("office_head"), "部门负责人审核", "approve", "同意").status_code == 302
    assert "撤回申请" not in text(clerk.get(f"/requests/{row.id}"))
    r = api.post(f"/api/v1/process-instances/{row.id}/withdraw", json={"reason": "改主意了"})
    assert r.status_code == 409 and "不能再撤回" in r.get_json()["message"]
    assert _rows(app, ProcessInstance)[0].state == "running"


def test_a_returned_request_is_withdrawn_through_the_api(app, browser, login):
    """R-WF-2: a return hands the request back to the clerk, who may then withdraw it."""
    clerk = browser("clerk")
    _fill_application(clerk)
    assert _decide(browser("office_head"), "部门负责人审核", "return", "岗位不准确").status_code == 302
    instance_id = login("clerk").get("/api/v1/process-instances").get_json()["items"][0]["id"]
    r = login("clerk").post(f"/api/v1/process-instances/{instance_id}/withdraw", json={"reason": "不再需要"})
    assert r.status_code == 200 and r.get_json()["state"] == "withdrawn"
    assert login("clerk").get("/api/v1/tasks").get_json()["total"] == 0
