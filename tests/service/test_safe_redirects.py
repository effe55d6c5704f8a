"""Where a page goes next is never another site, however a browser would read the address (issue 13,
R-SEC-2): every redirect that takes `next` from the request goes through pages.safe_next."""
from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD
from tests.service.test_pages import Browser, _decide, _fill_application, _task_link, text

# Each of these, as `next`, must land on the page's own default.
HOSTILE = [
    "//evil.example/",
    "/\t/evil.example/",        # browsers drop tabs and newlines: //evil.example/
    "/\n/evil.example/",
    "/\r\n/evil.example/",
    "\t//evil.example/",
    " //evil.example/",
    "/\\evil.example/",          # a backslash is a slash to a browser
    "\\\\evil.example/",
    "/\\/evil.example/",
    "\\/evil.example/",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "http:evil.example",
    "//evil.example@inkless.example/",
    "javascript:alert(1)",
    "evil.example",
    "/%2F/evil.example/",       # a second decoding (a proxy, a framework) makes them //evil.example
    "/%2f%2fevil.example/",
    "/%5Cevil.example/",
    "/%09/evil.example/",
    "/%252F%252Fevil.example/",
    "/%25252F%25252Fevil.example/",
    "/\x00/evil.example/",
    "/\x7f/evil.example/",
    "/\u200b/evil.example/",     # a zero-width space: invisible in the address bar
    "/" + "a" * 5000,           # longer than any address of ours
]

# … and these are the site's own pages, kept as they are.
LOCAL = ["/tasks", "/tasks?scope=assigned&q=%E8%B4%A6%E5%8F%B7", "/documents/中文", "/requests/abc#history",
         "/a%2Fb"]


@pytest.fixture
def browser(app, org):
    def _open(username: str | None = None) -> Browser:
        b = Browser(app)
        if username:
            b.sign_in(username)
        return b
    return _open


def _sign_in(b: Browser, next_value: str, in_query: bool = False):
    b.get("/signin")
    if in_query:
        return b.post("/signin", {"username": "clerk", "password": PASSWORD}, query_string={"next": next_value})
    return b.post("/signin", {"username": "clerk", "password": PASSWORD, "next": next_value})


@pytest.mark.parametrize("target", HOSTILE, ids=repr)
def test_sign_in_sends_a_hostile_next_home(browser, target):
    r = _sign_in(browser(), target)
    assert r.status_code == 302 and r.headers["Location"] == "/"


@pytest.mark.parametrize("raw", ["/%09/evil.example/", "/%0A/evil.example/", "/%0D%0ALocation:%20//evil.example/",
                                 "%2F%2Fevil.example", "/%5C/evil.example"])
def test_sign_in_with_next_in_the_raw_query_string_goes_home(browser, raw):
    """As reported: `POST /signin?next=/%09/evil.example/` answered `Location: //evil.example/`,
    and `next=/%0A/…` a 500."""
    b = browser()
    b.get("/signin")
    r = b.post(f"/signin?next={raw}", {"username": "clerk", "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"] == "/"


@pytest.mark.parametrize("target", LOCAL)
def test_sign_in_keeps_a_local_next(browser, target):
    r = _sign_in(browser(), target, in_query=True)
    assert r.status_code == 302
    assert r.headers["Location"] in (target, target.replace("中文", "%E4%B8%AD%E6%96%87"))


@pytest.mark.parametrize("target", ["/\t/evil.example/", "/\\evil.example/", "/%2F/evil.example/"], ids=repr)
def test_every_page_that_takes_next_refuses_it(browser, target):
    """The sign-in page while signed in, the code step, claiming and releasing a task, the
    second-factor set-up and the document upload: each falls back to its own default."""
    clerk = browser("clerk")
    r = clerk.get("/signin", query_string={"next": target})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    page = text(clerk.get("/documents/upload", query_string={"next": target}))
    action = re.search(r'action="(/documents/upload[^"]*)"', page).group(1)
    assert action.endswith("&next=/") and '<a href="/">返回待办任务</a>' in page
    page = text(clerk.get("/account/mfa", query_string={"next": target}))
    assert '<input type="hidden" name="next" value="/account">' in page

    _fill_application(browser("office_admin"))
    _decide(browser("office_head"), "部门负责人审核", "approve")
    platform = browser("platform")
    task_url = _task_link(text(platform.get("/tasks")), "平台管理部门终审")
    r = platform.post(f"{task_url}/claim", {"next": target})
    assert r.status_code == 302 and r.headers["Location"] == "/tasks"
    r = platform.post(f"{task_url}/release", {"next": target})
    assert r.status_code == 302 and r.headers["Location"] == "/tasks"

    signed_out = browser()
    r = signed_out.get("/signin/code", query_string={"next": target})
    assert r.status_code == 302 and "evil.example" not in r.headers["Location"]
