"""The start page offers what the user may start, by category, with search; a clerk withdraws
their own request while no reviewer has decided (issue 17, R-WF-2)."""
from __future__ import annotations

import re

from tests.service import test_pages
from tests.service.test_pages import text

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
