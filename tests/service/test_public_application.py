"""The public account application and its tracking code, through the pages (issue 6, R-ACC-1, R-ACC-2)."""
from __future__ import annotations

import re

import pytest

from tests.service import test_pages
from tests.service.test_account_application import APPLICATION
from tests.service.test_pages import Browser, _task_link, form_fields, text

browser = test_pages.browser  # the signed-in people of the page tests

CODE_LINK = re.compile(r'id="tracking-link">https?://[^/]+(/apply/track/([A-Za-z0-9_-]+))<')


@pytest.fixture
def visitor(app, org):
    """Someone without an account, at their own browser."""
    return Browser(app)


def apply(visitor: Browser, data: dict | None = None, status: int = 200) -> tuple[str, str]:
    """Submit the public form; the tracking link and code the answer shows once."""
    visitor.get("/apply")
    r = visitor.post("/apply", form_fields(data or APPLICATION))
    assert r.status_code == status, text(r)
    match = CODE_LINK.search(r.get_data(as_text=True))
    assert match, "no tracking link in the answer"
    return match.group(1), match.group(2)


def test_a_newcomer_applies_and_the_department_head_reviews_next(app, visitor, browser):
    """R-ACC-1: the public page starts the application; the head of the chosen department has the review."""
    page = text(visitor.get("/apply"))
    assert "办公室" in page and 'name="department"' in page  # departments are chosen by name
    link, code = apply(visitor)
    assert len(code) >= 32
    from service import applications
    from service.workspace_models import ApplicationTracking

    with app.app_context():
        from service import db

        stored = db.session().query(ApplicationTracking).one()
        assert stored.code_hash == applications.hash_code(code) and code not in stored.code_hash
    head = browser("office_head")
    inbox = text(head.get("/tasks"))
    assert "部门负责人审核" in inbox
    assert "部门负责人审核" not in text(browser("fin_head").get("/tasks"))
    tracking = text(visitor.get(link))
    assert "马小云" in tracking and "部门负责人审核" in tracking


def test_returned_application_is_amended_only_with_the_tracking_code(app, visitor, browser, login):
    """R-ACC-1: the reason is visible on the tracking page; only the code holder completes "修改申请"."""
    link, _code = apply(visitor)
    head = browser("office_head")
    task = _task_link(text(head.get("/tasks")), "部门负责人审核")
    r = head.post(task, {"decision": "return", "opinion": "岗位写具体些"})
    assert r.status_code == 302
    # Nobody with an account can take the applicant's task: not the head, not the department's admin.
    for who in ("office_head", "office_admin", "sysadmin"):
        assert "修改申请" not in text(browser(who).get("/tasks")), who
    from service.models import OpenTask

    with app.app_context():
        from service import db

        amend_id = db.session().query(OpenTask).filter_by(element_id="amend_application").one().id
    for who in ("office_admin", "sysadmin"):
        r = login(who).post(f"/api/v1/tasks/{amend_id}/complete", json={"data": dict(APPLICATION, action="withdraw")})
        assert r.status_code == 403, (who, r.get_json())
    page = text(visitor.get(link))
    assert "岗位写具体些" in page and "修改申请" in page
    r = visitor.post(link, form_fields(dict(APPLICATION, post="")))  # no action chosen, post emptied
    assert r.status_code == 422 and "处理方式" in text(r) and 'id="error-summary"' in text(r)
    amended = dict(APPLICATION, post="综合档案管理员", action="resubmit")
    r = visitor.post(link, form_fields(amended))
    assert r.status_code == 302, text(r)
    page = text(visitor.get(link))
    assert "综合档案管理员" in page and "修改申请" in page  # now in the timeline, no form any more
    assert 'name="action"' not in page
    # Both reviewers approve; the tracking page says the account exists, not its password.
    task = _task_link(text(head.get("/tasks")), "部门负责人审核")
    assert head.post(task, {"decision": "approve"}).status_code == 302
    platform = browser("platform")
    task = _task_link(text(platform.get("/tasks")), "平台管理部门终审")
    done = text(platform.post(task, {"decision": "approve"}))
    password = re.search(r'<code class="secret">([^<]+)</code>', done).group(1)
    page = text(visitor.get(link))
    assert 'id="account-created"' in page and "maxy" in page and password not in page
    newcomer = Browser(app)
    newcomer.get("/signin")
    assert newcomer.post("/signin", {"username": "maxy", "password": password}).status_code == 302


def test_the_tracking_code_opens_its_own_application_and_nothing_else(app, visitor, browser):
    """R-ACC-1, R-SEC-4: a wrong code is 404; a code never opens another instance, a task, or the API."""
    link_a, code_a = apply(visitor)
    other = Browser(app)
    link_b, code_b = apply(other, dict(APPLICATION, username="lisi", full_name="李四"))
    assert code_a != code_b
    page_a = text(visitor.get(link_a))
    assert "马小云" in page_a and "李四" not in page_a
    assert visitor.get("/apply/track/" + code_a[:-1] + ("A" if code_a[-1] != "A" else "B")).status_code == 404
    assert visitor.get("/apply/track/x" * 3).status_code == 404
    assert visitor.get(link_a + "/diagram.xml").status_code == 200
    # Holding a code is not being signed in: no workspace page, no API, no other instance.
    assert visitor.get("/tasks").status_code == 302
    assert visitor.get("/requests/1").status_code == 302
    assert visitor.client.get("/api/v1/process-instances/1").status_code == 401
    assert visitor.client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {code_a}"}).status_code == 401
    # Posting to someone else's (not returned) application changes nothing.
    r = visitor.post(link_b, form_fields(dict(APPLICATION, action="withdraw")))
    assert r.status_code == 200 and 'name="action"' not in text(r)


def test_public_forms_need_the_csrf_token_and_are_rate_limited(visitor):
    """R-ACC-1, R-SEC-10: no token → 403; the sixth application in an hour from one address → 429."""
    visitor.get("/apply")
    assert visitor.post("/apply", form_fields(APPLICATION), csrf=False).status_code == 403
    for i in range(5):
        r = visitor.post("/apply", form_fields(dict(APPLICATION, username=f"user{i}x")))
        assert r.status_code == 200, text(r)
    r = visitor.post("/apply", form_fields(dict(APPLICATION, username="toomany")))
    assert r.status_code == 429
    assert visitor.get("/apply").status_code == 200  # reading the form is not limited
    assert "请求过于频繁" in text(r) or "稍后" in text(r)


def test_every_view_with_a_limit_is_one_the_limiter_looks_at(app):
    """R-SEC-10: requests to views without a limit skip the limiter (service/ratelimit.py), so a view
    given a limit some other way than `ratelimit.limit` would silently go unlimited; none is."""
    from flask_limiter.util import get_qualified_name

    from service.ratelimit import _LIMITED, limiter

    limited = {view for view in app.view_functions.values()
               if limiter.limit_manager.decorated_limits(get_qualified_name(view))}
    assert limited and limited <= _LIMITED, limited - _LIMITED


def test_the_public_form_shows_errors_in_place(visitor):
    """R-ACC-1: a bad value or an unknown department is named, the input is kept, nothing starts."""
    visitor.get("/apply")
    r = visitor.post("/apply", form_fields(dict(APPLICATION, username="X!", department="NOPE")))
    assert r.status_code == 422
    page = text(r)
    assert "登录名" in page and 'value="X!"' in page
    assert "tracking-link" not in page
