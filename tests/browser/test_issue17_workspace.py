"""Issue 17 in Chromium: the start page offers what the clerk may start, by category, with search;
the clerk withdraws a request (R-WF-2); a head names a substitute, who receives the next task
(R-WF-2); a department administrator creates an account and is refused deactivating another while
its hand-over is incomplete (R-ACC-3, R-ACC-4). Screenshots at 1366 and 390 px in test-artifacts/."""
from __future__ import annotations

from datetime import date, timedelta

from tests.browser.test_workspace import Person, browser, fill_application, server  # noqa: F401,F811 - fixtures
from tests.service.test_account_application import APPLICATION

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}


def _apply(person: Person, reference: str):
    """Start an account application from the start page and submit its first form."""
    person.goto("/start")
    card = person.page.locator("li.card.process", has=person.page.get_by_role("heading", name="账号申请", exact=True))
    card.get_by_role("textbox").fill(reference)
    card.get_by_role("button", name="发起").click()
    person.page.wait_for_url("**/tasks/*")
    fill_application(person.page, APPLICATION, department="办公室")
    person.page.get_by_role("button", name="提交").click()
    person.page.wait_for_url("**/tasks")


def test_start_withdraw_substitute_and_people_admin_in_the_browser(server, browser):  # noqa: F811
    clerk = Person(browser, server, "clerk", **DESKTOP)
    clerk.sign_in("clerk")
    clerk.goto("/start")
    headings = clerk.page.locator("main h2, main h3").all_inner_texts()
    assert "账号与权限" in headings and "账号申请" in headings
    assert "季度考核" not in headings and "权限定期复核" not in headings
    clerk.shot("17-start-1366")
    clerk.check_accessibility("the start page")
    clerk.page.get_by_role("searchbox", name="按流程名称搜索").fill("故障")
    clerk.page.get_by_role("button", name="搜索").click()
    # Read the headings of the answer, not of the page the search left.
    clerk.page.wait_for_url("**/start?q=*")  # waits for the answer's load too
    # The search reads names and descriptions: the incident procedure says it takes security faults.
    assert sorted(clerk.page.locator("main h3").all_inner_texts()) == sorted(["故障报告与处理", "网络安全事件处置"])
    phone = Person(browser, server, "clerk-phone", **PHONE)
    phone.sign_in("clerk")
    phone.goto("/start")
    phone.shot("17-start-390")

    # The clerk starts an application and withdraws it before the head decides (R-WF-2).
    _apply(clerk, "WD-1")
    clerk.goto("/requests")
    clerk.page.get_by_role("link", name="账号申请", exact=False).first.click()
    clerk.page.get_by_role("textbox", name="原因").fill("岗位调整，不再需要")
    clerk.page.get_by_role("button", name="撤回").click()
    assert "您的申请已撤回。" in clerk.page.inner_text("main")
    assert "申请人撤回" in clerk.page.inner_text("main") and "已撤回" in clerk.page.inner_text("main")
    clerk.check_accessibility("a withdrawn request")

    # The head names office_admin as substitute for three days; the next application reaches them.
    head = Person(browser, server, "office_head", **DESKTOP)
    head.sign_in("office_head")
    head.goto("/tasks/away")
    today = date.fromisoformat(head.page.get_by_label("开始日期（外出第一天）").get_attribute("min"))
    head.page.get_by_label("代理人").select_option(label="office_admin")
    head.page.get_by_label("结束日期（外出最后一天）").fill((today + timedelta(days=2)).isoformat())
    head.page.get_by_label("原因").fill("赴西宁出差")
    head.page.get_by_role("button", name="保存代理设置").click()
    assert "已指定代理人" in head.page.inner_text("main")
    head.check_accessibility("the out-of-office page")
    _apply(clerk, "SUB-1")
    deputy = Person(browser, server, "office_admin", **DESKTOP)
    deputy.sign_in("office_admin")
    deputy.open_task("部门负责人审核")
    assert "office_head 外出，由代理人 office_admin 代为办理。" in deputy.page.inner_text("main")
    deputy.shot("17-task-form-1366")
    deputy.goto("/tasks")
    deputy.shot("17-inbox-1366")

    # The department administrator creates an account and is refused deactivating the clerk,
    # whose request is still running (R-ACC-3, R-ACC-4).
    deputy.goto("/account/users")
    deputy.shot("17-user-admin-1366")
    deputy.check_accessibility("the accounts page")
    deputy.page.get_by_role("link", name="新建账号").click()
    deputy.page.get_by_label("用户名").fill("wangwu")
    deputy.page.get_by_label("姓名").fill("王五")
    deputy.page.get_by_label("岗位").fill("档案员")
    deputy.page.get_by_role("button", name="创建账号").click()
    assert deputy.page.locator("#temporary-password").inner_text()
    deputy.goto("/account/users?q=clerk")
    deputy.page.get_by_role("link", name="clerk", exact=True).click()
    deputy.page.get_by_label("原因").fill("离职")
    deputy.page.get_by_role("button", name="注销", exact=True).click()
    assert "平台拒绝注销" in deputy.page.inner_text("main")
    deputy.check_accessibility("a refused deactivation")
    admin_phone = Person(browser, server, "office_admin-phone", **PHONE)
    admin_phone.sign_in("office_admin")
    admin_phone.goto("/account/users")
    admin_phone.shot("17-user-admin-390")
    admin_phone.goto("/tasks")
    admin_phone.shot("17-inbox-390")
    admin_phone.open_task("部门负责人审核")
    admin_phone.shot("17-task-form-390")
    # The same task and the start page under English: the procedure's own words in English.
    admin_phone.page.goto(admin_phone.page.url.split("?")[0] + "?lang=en")
    assert "Department head review" in admin_phone.page.inner_text("main")
    admin_phone.shot("17-task-form-en-390")
    clerk.goto("/start?lang=en")
    assert "Account application" in clerk.page.locator("main h3").all_inner_texts()
    clerk.shot("17-start-en-1366")
    for person in (clerk, phone, head, deputy, admin_phone):
        assert not person.problems, (person.name, person.problems)
