"""Issue 17's must-show in Chromium: a clerk reports a fault choosing the time with the native
picker and the department from a list; the head of the platform management department reads a
notification naming the clerk and the request, completes the task from the inbox, and the
notification is read; the clerk is told the request finished. Screenshots in test-artifacts/."""
from __future__ import annotations

from sqlalchemy import update

from service.models import User
from tests.browser.test_workspace import Person, browser, server  # noqa: F401  (fixtures)


def _full_name(app, username: str, full_name: str) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        s.execute(update(User).where(User.username == username).values(full_name=full_name))
        s.commit()
        s.close()


def test_a_clerk_reports_a_fault_with_pickers_and_the_head_is_told_who_and_what(app, server, browser):  # noqa: F811
    """R-OPS-3, R-WF-2 (issue 17: pickers instead of codes, and who reported what in names)."""
    _full_name(app, "clerk", "张文书")
    clerk = Person(browser, server, "clerk")
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(server + "/")
    clerk.goto("/start")
    clerk.page.locator("form[action='/start/fault_report'] button[type=submit]").click()
    clerk.page.wait_for_url(server + "/tasks/*")

    when = clerk.page.get_by_label("故障发生时间")
    assert when.get_attribute("type") == "datetime-local"  # the browser's own picker
    when.fill("2026-12-03T09:30")
    department = clerk.page.get_by_role("combobox", name="故障所在部门")
    assert department.locator("option:checked").inner_text() == "办公室"  # the clerk's own, preselected
    department.select_option(label="财务处")
    clerk.page.get_by_role("radio", name="流程审批").check()
    clerk.page.get_by_role("textbox", name="故障现象").fill("提交审批时页面提示“服务器错误”")
    clerk.shot("17-fault-report-pickers")
    clerk.check_accessibility("the fault report form with pickers")
    clerk.page.get_by_role("button", name="提交", exact=True).click()
    clerk.page.wait_for_url(server + "/tasks")
    assert not clerk.problems, clerk.problems

    head = Person(browser, server, "platform")
    head.sign_in("platform")
    head.page.wait_for_url(server + "/")
    head.goto("/notifications")
    notice = head.page.locator(".notification.unread").first.inner_text()
    assert "新待办：诊断分级" in notice and "故障报告与处理 #" in notice and "申请人：张文书" in notice
    head.shot("17-head-notification")
    head.check_accessibility("the notifications page with context")

    head.open_task("诊断分级")
    context = head.page.locator("main").inner_text()
    assert "张文书 报告:2026年12月3日 09:30 起" in context
    assert "故障所在部门" in context and "财务处" in context and "FIN" not in context and "+08:00" not in context
    head.shot("17-head-triage")
    head.page.get_by_role("radio", name="不属于平台故障,不予受理").check()
    head.page.get_by_role("textbox", name="初步诊断").fill("本地网络故障,已告知报告人联系信息中心")
    head.page.get_by_role("button", name="提交", exact=True).click()
    head.page.wait_for_url(server + "/tasks")
    head.goto("/notifications")
    assert head.page.locator(".notification.unread").count() == 0
    assert not head.problems, head.problems

    clerk.goto("/notifications")
    told = clerk.page.locator(".notification.unread").first.inner_text()
    assert "申请已办结（不予受理）" in told and "故障报告与处理 #" in told
    clerk.shot("17-clerk-told-finished")
