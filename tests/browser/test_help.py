"""The built-in help in a real browser (R-OPS-4): a visitor follows "帮助" from the sign-in page,
searches the help and opens a FAQ answer; a department admin finds their guide first and the
contextual link from the inbox. axe-core checks every help page; screenshots go to test-artifacts/."""
from __future__ import annotations

import re

from tests.browser.test_workspace import Person, browser, server  # noqa: F401  (fixtures)


def test_help_is_found_searched_and_accessible(server, browser):  # noqa: F811
    """R-OPS-4: the help pages pass axe, work under the strict CSP and lead where they say."""
    visitor = Person(browser, server, "visitor")
    visitor.goto("/signin")
    visitor.page.get_by_role("link", name="帮助", exact=True).click()
    visitor.page.wait_for_url("**/help/staff#sign-in")
    assert visitor.page.get_by_role("heading", name="登录", exact=True).is_visible()
    visitor.shot("help-guide-staff")
    visitor.check_accessibility("the staff guide")

    visitor.goto("/help")
    visitor.page.get_by_label("搜索帮助").fill("退回修改")
    visitor.page.get_by_role("button", name="搜索").click()
    visitor.page.wait_for_url("**/help?q=*")
    visitor.shot("help-search")
    visitor.check_accessibility("the help search results")
    visitor.page.get_by_role("link", name="“退回修改”是什么意思？").click()
    visitor.page.wait_for_url("**/help/faq#faq-returned")
    visitor.check_accessibility("the FAQ")

    visitor.goto("/help?lang=en")
    assert visitor.page.get_by_role("heading", name="Guides").is_visible()
    visitor.check_accessibility("the help index in English")

    admin = Person(browser, server, "office_admin")
    admin.sign_in("office_admin")
    admin.page.wait_for_load_state()
    admin.goto("/help")
    guides = admin.page.locator(".help-guides > li > a")
    assert guides.first.inner_text() == "部门管理员"
    admin.shot("help-index-dept-admin")
    admin.check_accessibility("the help index, signed in")
    admin.goto("/tasks")
    admin.page.get_by_role("link", name="帮助", exact=True).click()
    admin.page.wait_for_url(re.compile(r".*/help/staff#inbox$"))

    assert not visitor.problems and not admin.problems, visitor.problems + admin.problems
