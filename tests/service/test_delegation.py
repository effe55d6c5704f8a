"""Delegation and substitutes (issue 17, R-WF-2): a person hands one of their tasks to a colleague
who may do it, with a reason; a head going away names a substitute, who receives the tasks offered
to the head during the period. Both are audited and told on the task page."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.service import test_pages
from tests.service.test_pages import _decide, _fill_application, _task_link, text

browser = test_pages.browser  # the signed-in people of the page tests


def _rows(app, model, *where):
    with app.app_context():
        from service import db

        return db.session().scalars(select(model).where(*where)).all()


def _day(frozen, days: int) -> str:
    from service.localtime import PLATFORM_TZ

    return (frozen.current.astimezone(PLATFORM_TZ).date() + timedelta(days=days)).isoformat()


def test_a_head_names_a_substitute_who_receives_the_next_task(app, frozen, browser):
    """R-WF-2: office_head is away from today for three days and names clerk; the next application's
    head review reaches clerk too (told so on the task page), who decides it; audited."""
    from service.models import AuditEvent, Notification, User

    head = browser("office_head")
    assert "外出代理" in text(head.get("/tasks/away"))
    # Bad input is named beside its field, in Chinese.
    r = head.post("/tasks/away", {"substitute": "fin_head", "starts_on": _day(frozen, 0), "ends_on": _day(frozen, 2),
                                  "reason": "出差"})
    assert r.status_code == 422 and "请选择本部门在岗的同事" in text(r)
    r = head.post("/tasks/away", {"substitute": "clerk", "starts_on": _day(frozen, 2), "ends_on": _day(frozen, 1),
                                  "reason": "出差"})
    assert r.status_code == 422 and "须晚于开始日期" in text(r)
    r = head.post("/tasks/away", {"substitute": "clerk", "starts_on": _day(frozen, 0), "ends_on": _day(frozen, 2),
                                  "reason": "赴西宁出差"})
    assert r.status_code == 302
    page = text(head.get("/tasks/away"))
    assert "您的代理人" in page and "赴西宁出差" in page

    _fill_application(browser("office_admin"))
    clerk = browser("clerk")
    task_url = _task_link(text(clerk.get("/tasks")), "部门负责人审核")
    page = text(clerk.get(task_url))
    assert "office_head 外出，由代理人 clerk 代为办理。" in page
    (clerk_id,) = [u.id for u in _rows(app, User, User.username == "clerk")]
    assert _rows(app, Notification, Notification.user_id == clerk_id, Notification.kind == "task")
    (event,) = _rows(app, AuditEvent, AuditEvent.action == "task_offered_to_substitute")
    assert event.detail["to"] == clerk_id
    assert _rows(app, AuditEvent, AuditEvent.action == "substitute_named")[0].detail["reason"] == "赴西宁出差"
    assert _decide(clerk, "部门负责人审核", "approve", "同意（代部门负责人）").status_code == 302

    # After the period the head's tasks are the head's alone again.
    frozen.current = frozen.current + timedelta(days=4)
    _fill_application(browser("office_admin"))  # signed in afresh: the sessions of four days ago ended
    assert "部门负责人审核" not in text(browser("clerk").get("/tasks"))
    assert "部门负责人审核" in text(browser("office_head").get("/tasks"))


def test_a_substitution_through_the_api_is_listed_and_ended(app, frozen, login):
    head = login("office_head")
    now = frozen.current
    body = {"substitute": "clerk", "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=1)).isoformat(),
            "reason": "休假"}
    r = head.post("/api/v1/substitutions", json=body)
    assert r.status_code == 201 and r.get_json()["substitute"] == "clerk"
    assert head.post("/api/v1/substitutions", json=body).status_code == 409  # overlapping
    assert head.post("/api/v1/substitutions", json=dict(body, ends_at=now.isoformat())).status_code == 422
    items = head.get("/api/v1/substitutions").get_json()["items"]
    assert [i["substitute"] for i in items] == ["clerk"]
    assert login("clerk").client.delete(f"/api/v1/substitutions/{items[0]['id']}",
                                        headers=login("clerk")._headers()).status_code == 404
    assert head.client.delete(f"/api/v1/substitutions/{items[0]['id']}", headers=head._headers()).status_code == 200
    assert head.get("/api/v1/substitutions").get_json()["items"] == []


def test_a_reviewer_hands_a_task_to_a_colleague_who_may_do_it(app, browser, login):
    """R-WF-2: platform's final review is offered to the platform management department; platform
    hands it to sysadmin (a member) with a reason, not to a clerk; the task says who handed it over."""
    from service.models import AuditEvent, OpenTask

    _fill_application(browser("office_admin"))
    assert _decide(browser("office_head"), "部门负责人审核", "approve", "同意").status_code == 302
    platform = browser("platform")
    task_url = _task_link(text(platform.get("/tasks")), "平台管理部门终审")
    page = text(platform.get(task_url))
    assert "转交给同事办理" in page and 'value="sysadmin"' in page and 'value="clerk"' not in page
    task_id = task_url.rsplit("/", 1)[1]
    api = login("platform")
    r = api.post(f"/api/v1/tasks/{task_id}/delegate", json={"username": "clerk", "reason": "请代办"})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "username"
    assert login("clerk").post(f"/api/v1/tasks/{task_id}/delegate",
                               json={"username": "sysadmin", "reason": "x"}).status_code == 404
    r = platform.post(f"{task_url}/delegate", {"username": "sysadmin", "reason": "本周由系统管理员终审"})
    assert r.status_code == 302
    (task,) = _rows(app, OpenTask, OpenTask.id == task_id)
    assert task.assignee_id is not None
    page = text(browser("sysadmin").get(task_url))
    assert "由 platform 委托 sysadmin 办理：本周由系统管理员终审" in page
    (event,) = _rows(app, AuditEvent, AuditEvent.action == "task_delegated")
    assert event.detail["reason"] == "本周由系统管理员终审"
    assert "您已将“平台管理部门终审”转交给 sysadmin。" in text(platform.get("/tasks"))
    assert f'href="{task_url}"' not in text(platform.get("/tasks"))  # no longer on platform's list
