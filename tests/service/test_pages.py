"""The staff workspace in the browser, through Flask's test client (issue 6, R-WF-2, R-WF-3, R-ACC-1/2)."""
from __future__ import annotations

import re
from html import unescape

import pytest
from werkzeug.datastructures import MultiDict

from tests.conftest import PASSWORD
from tests.service.test_account_application import APPLICATION

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """One person's browser: a cookie jar, and the CSRF token of the last page it read."""

    def __init__(self, app):
        self.client = app.test_client()
        self.csrf = None

    def get(self, url, **kw):
        r = self.client.get(url, **kw)
        match = CSRF.search(r.get_data(as_text=True))
        if match:
            self.csrf = match.group(1)
        return r

    def post(self, url, data=None, csrf=True, **kw):
        fields = list((data or {}).items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            if self.csrf is None:
                self.get("/signin")
            fields.append(("csrf_token", self.csrf))
        r = self.client.post(url, data=MultiDict(fields), **kw)
        match = CSRF.search(r.get_data(as_text=True))
        if match:
            self.csrf = match.group(1)
        return r

    def sign_in(self, username, password=PASSWORD):
        self.get("/signin")
        r = self.post("/signin", {"username": username, "password": password})
        assert r.status_code == 302, r.get_data(as_text=True)
        self.get("/")
        return r


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def form_fields(data: dict) -> list[tuple[str, str]]:
    """An application as the browser posts it: one pair per value, and a marker per checkbox group."""
    out = []
    for key, value in data.items():
        if isinstance(value, list):
            out.append((f"{key}.present", "1"))
            out.extend((key, v) for v in value)
        else:
            out.append((key, value))
    return out


@pytest.fixture
def browser(app, org):
    def _open(username: str | None = None) -> Browser:
        b = Browser(app)
        if username:
            b.sign_in(username)
        return b
    return _open


def _task_link(page: str, name: str) -> str:
    match = re.search(r'href="(/tasks/[0-9a-f-]{36})">' + re.escape(name) + "<", page)
    assert match, f"no link to task {name!r} in the page"
    return match.group(1)


def _start_application(admin: Browser) -> str:
    admin.get("/start")
    r = admin.post("/start/account_application", {"business_key": "ACC-PAGE-1"})
    assert r.status_code == 302
    task_url = r.headers["Location"]
    assert task_url.startswith("/tasks/")
    return task_url


def _fill_application(admin: Browser) -> str:
    task_url = _start_application(admin)
    admin.get(task_url)
    r = admin.post(task_url, form_fields(APPLICATION))
    assert r.status_code == 302, text(r)
    return task_url


def _decide(reviewer: Browser, task_name: str, decision: str, opinion: str = ""):
    task_url = _task_link(text(reviewer.get("/tasks")), task_name)
    reviewer.get(task_url)
    return reviewer.post(task_url, {"decision": decision, "opinion": opinion})


# --- signing in -----------------------------------------------------------------------------------


def test_sign_in_with_a_wrong_password_says_so_and_keeps_the_username(browser):
    b = browser()
    assert b.get("/").status_code == 302  # signed out: to the sign-in page
    page = b.get("/signin")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert '<html lang="zh-CN">' in text(page)
    r = b.post("/signin", {"username": "office_admin", "password": "wrong password"})
    assert r.status_code == 401
    assert "用户名或密码错误" in text(r)
    assert 'value="office_admin"' in text(r)

    r = b.post("/signin", {"username": "office_admin", "password": PASSWORD, "next": "/tasks"})
    assert r.status_code == 302 and r.headers["Location"] == "/tasks"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "我的待办" in text(b.get("/tasks"))


def test_sign_in_never_redirects_off_site(browser):
    b = browser()
    b.get("/signin")
    r = b.post("/signin", {"username": "clerk", "password": PASSWORD, "next": "//evil.example/"})
    assert r.headers["Location"] == "/"


def test_sign_out_ends_the_session_on_the_server(app, browser):
    b = browser("clerk")
    name = app.config["SESSION_COOKIE_NAME"]
    session_cookie = b.client.get_cookie(name)
    assert b.post("/signout").status_code == 302
    assert b.get("/").status_code == 302
    # The old cookie, replayed, signs in nobody: the session token was revoked.
    replay = browser()
    replay.client.set_cookie(name, session_cookie.value)
    assert replay.get("/").status_code == 302


# --- CSRF -----------------------------------------------------------------------------------------


def test_page_posts_without_the_csrf_token_are_refused(browser, login):
    b = browser("office_admin")
    task_url = _start_application(b)
    assert b.post(f"{task_url}/claim", csrf=False).status_code == 403
    forged = b.post(task_url, form_fields(APPLICATION) + [("csrf_token", "forged")], csrf=False)
    assert forged.status_code == 403
    assert "表单已过期" in text(forged)
    assert browser().post("/signin", {"username": "clerk", "password": PASSWORD}, csrf=False).status_code == 403
    # The API called with the browser's session cookie needs the token too …
    r = b.client.post("/api/v1/process-instances", json={"process_key": "account_application"})
    assert r.status_code == 403
    r = b.client.post("/api/v1/process-instances", json={"process_key": "account_application"},
                      headers={"X-CSRF-Token": b.csrf})
    assert r.status_code == 201
    # … a bearer token does not.
    r = login("clerk").post("/api/v1/process-instances", json={"process_key": "account_application"})
    assert r.status_code == 201


# --- the inbox, the form, the review ----------------------------------------------------------------


def test_inbox_lists_the_task_and_finds_it_by_name(browser):
    admin = browser("office_admin")
    task_url = _start_application(admin)
    inbox = text(admin.get("/tasks"))
    assert _task_link(inbox, "填写账号申请") == task_url
    assert "ACC-PAGE-1" in inbox
    assert "共 1 项待办" in inbox
    assert 'id="count-tasks">1<' in text(admin.get("/"))
    assert "填写账号申请" in text(admin.get("/tasks", query_string={"q": "账号"}))
    assert "没有符合" in text(admin.get("/tasks", query_string={"q": "报销"}))
    # Nobody else sees it, and its page does not exist for them.
    clerk = browser("clerk")
    assert "填写账号申请" not in text(clerk.get("/tasks"))
    assert clerk.get(task_url).status_code == 404


def test_a_group_task_is_claimed_and_released_from_the_inbox(browser):
    _fill_application(browser("office_admin"))
    _decide(browser("office_head"), "部门负责人审核", "approve")
    platform, sysadmin = browser("platform"), browser("sysadmin")  # both in the platform_admin group
    page = text(platform.get("/tasks"))
    task_url = _task_link(page, "平台管理部门终审")
    assert "尚未签收" in page and f'action="{task_url}/claim"' in page
    assert "平台管理部门终审" in text(sysadmin.get("/tasks"))

    r = platform.post(f"{task_url}/claim", {"next": "/tasks"})
    assert r.status_code == 302 and r.headers["Location"] == "/tasks"
    page = text(platform.get("/tasks", query_string={"scope": "assigned"}))
    assert "您已签收任务“平台管理部门终审”" in page and f'action="{task_url}/release"' in page
    assert "平台管理部门终审" not in text(sysadmin.get("/tasks"))
    assert sysadmin.post(f"{task_url}/claim").status_code == 409  # someone else has it

    assert platform.post(f"{task_url}/release", {"next": "/tasks"}).status_code == 302
    assert "暂无待办" in text(platform.get("/tasks", query_string={"scope": "assigned"}))
    assert "平台管理部门终审" in text(sysadmin.get("/tasks", query_string={"scope": "unclaimed"}))


def test_the_application_form_shows_field_errors_keeps_the_input_then_submits(browser):
    admin = browser("office_admin")
    task_url = _start_application(admin)
    page = text(admin.get(task_url))
    # The form is built from the JSON Schema and its UI schema: labels, help, required markers, choices.
    assert '<label for="f-full_name">姓名 <span class="req" aria-hidden="true">*</span></label>' in page
    assert "申请人的真实姓名。" in page
    assert 'type="checkbox" id="f-roles-1" name="roles" value="user"' in page and "普通用户" in page
    assert '<textarea id="f-reason" name="reason"' in page

    bad = dict(APPLICATION, username="X!", full_name="马小云 ")
    del bad["post"]
    r = admin.post(task_url, form_fields(bad))
    assert r.status_code == 422
    page = text(r)
    assert '<p class="error" id="f-username-error">' in page
    assert "登录名格式不正确" in page and "岗位为必填项" in page
    assert re.search(r'id="f-username" name="username" type="text" value="X!"[^>]*aria-describedby="f-username-help '
                     r'f-username-error" aria-invalid="true"', page)
    assert 'value="马小云"' in page  # what was typed is kept
    assert 'value="inspector"\n             checked' in page or re.search(r'value="inspector"\s+checked', page)
    assert 'role="alert"' in page and 'href="#f-post"' in page

    r = admin.post(task_url, form_fields(APPLICATION))
    assert r.status_code == 302 and r.headers["Location"] == "/tasks"
    assert "已完成：填写账号申请" in text(admin.get("/tasks"))
    assert admin.get(task_url).status_code == 404


def test_department_head_returns_then_approves_through_the_page(browser):
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    task_url = _task_link(text(head.get("/tasks")), "部门负责人审核")
    page = text(head.get(task_url))
    # Context: who started it, what was submitted; the decision block as radio buttons.
    assert "office_admin (办公室)" in page
    assert "马小云" in page and "maxy@example.org" in page and "检查员" in page
    assert 'type="radio" id="f-decision-1" name="decision" value="approve"' in page
    assert "退回修改" in page

    r = head.post(task_url, {"decision": "return"})
    assert r.status_code == 422
    assert "退回或驳回时必须填写审核意见。" in text(r)
    assert re.search(r'value="return"\s+checked', text(r))

    assert head.post(task_url, {"decision": "return", "opinion": "岗位填写不准确"}).status_code == 302

    # The applicant sees the reason, amends and resubmits.
    amend_url = _task_link(text(admin.get("/tasks")), "修改申请")
    page = text(admin.get(amend_url))
    assert "岗位填写不准确" in page
    assert 'value="档案管理员"' in page  # the earlier answers are filled in
    r = admin.post(amend_url, form_fields(dict(APPLICATION, post="综合档案管理员", action="resubmit")))
    assert r.status_code == 302, text(r)

    page = text(head.get(_task_link(text(head.get("/tasks")), "部门负责人审核")))
    assert "综合档案管理员" in page and "岗位填写不准确" in page  # earlier opinion shown
    assert _decide(head, "部门负责人审核", "approve", "信息属实").status_code == 302

    platform = browser("platform")
    r = _decide(platform, "平台管理部门终审", "approve")
    assert r.status_code == 200  # the initial password is shown on this page, once
    page = text(r)
    password = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)
    assert "maxy" in page

    # The new account must choose its own password first.
    newcomer = browser()
    newcomer.get("/signin")
    r = newcomer.post("/signin", {"username": "maxy", "password": password})
    assert r.headers["Location"].startswith("/password")
    assert newcomer.get("/tasks").headers["Location"].startswith("/password")
    newcomer.get("/password")
    r = newcomer.post("/password", {"old_password": password, "new_password": "short",
                                    "new_password_again": "short"})
    assert r.status_code == 422 and "至少需要 12 个字符" in text(r)
    r = newcomer.post("/password", {"old_password": password, "new_password": "a much longer secret",
                                    "new_password_again": "a much longer secret"})
    assert r.status_code == 302
    assert newcomer.get("/").status_code == 200


def test_my_requests_shows_the_timeline_and_where_it_is_now(browser):
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    _decide(head, "部门负责人审核", "approve", "信息属实")

    page = text(admin.get("/requests"))
    assert "账号申请 #" in page and "ACC-PAGE-1" in page
    assert "平台管理部门终审" in page and "平台管理部门" in page  # now: waiting for the platform group
    for expected in ("提出账号申请", "填写账号申请", "部门负责人审核", "office_head", "同意", "信息属实"):
        assert expected in page, expected
    assert "初审结果" not in page  # gateways are the engine's bookkeeping

    detail_url = re.search(r'href="(/requests/\d+)"', page).group(1)
    page = text(admin.get(detail_url))
    assert "处理进度" in page and "信息属实" in page and "检查员" in page
    assert admin.get(detail_url + "/record").status_code == 409  # not finished yet

    _decide(browser("platform"), "平台管理部门终审", "approve")
    page = text(admin.get(detail_url + "/record"))
    assert "已办结" in page and "信息属实" in page and "马小云" in page and "platform" in page
    # Somebody with no part in it cannot read it.
    assert browser("fin_head").get(detail_url).status_code == 404


def test_english_on_request_sticks_with_a_cookie(browser):
    b = browser("office_admin")
    r = b.get("/tasks", query_string={"lang": "en"})
    page = text(r)
    assert '<html lang="en">' in page and "My tasks" in page and "我的待办" not in page
    assert "lang=en" in r.headers["Set-Cookie"]
    assert "Start a process" in text(b.get("/start"))
    assert "Wrong username or password." in text(b.post("/signin", {"username": "x", "password": "y"}))
    b.get("/tasks", query_string={"lang": "zh"})
    assert "我的待办" in text(b.get("/tasks"))


def test_start_catalogue_lists_latest_definitions(browser):
    page = text(browser("clerk").get("/start"))
    assert "账号申请" in page
    assert "员工向所在部门申请平台账号" in page or "账号申请" in page
