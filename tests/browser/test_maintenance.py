"""The maintenance page in a real browser against a real server (R-OPS-1, R-SEC-5): a system
administrator opens it from the navigation, reads the daily checks and the scheduled jobs, backs up
now and verifies the new backup; a clerk is refused. The server (tests/service/test_durability.py)
turns the second-factor enforcement off, so the administrator signs in by password alone.
Screenshot: test-artifacts/maintenance.png."""
from __future__ import annotations

import re

from sqlalchemy import select

from service.models import AuditEvent
from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures


def test_a_system_administrator_backs_up_and_verifies_from_the_maintenance_page(server, browser, app):  # noqa: F811
    """R-OPS-1, R-SEC-5: the daily checks, the scheduled jobs, "back up now" and "verify"."""
    admin = Person(browser, server, "sysadmin")
    admin.sign_in("sysadmin")
    page = admin.page
    page.wait_for_url(server + "/")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="运行维护").click()
    page.wait_for_url(server + "/maintenance")
    assert page.get_by_role("heading", level=1).inner_text() == "运行维护"

    checks = page.get_by_role("region", name="日常检查").get_by_role("table")
    for name in ("数据库可连接", "审计日志哈希链校验通过"):
        assert checks.get_by_role("row", name=re.compile(name)).get_by_text("正常").count() == 1, name
    # No backup yet: the last-backup check is a problem and the list says so.
    last = checks.get_by_role("row", name=re.compile("最近一次备份"))
    assert last.get_by_text("问题", exact=True).count() == 1 and "尚无备份" in last.inner_text()
    backups = page.get_by_role("region", name="备份")
    assert "尚无备份。" in backups.get_by_role("table").inner_text()
    # The command to restore is shown whole (its "<id>" was once taken for an HTML tag).
    assert "再运行 `inkless backup restore <id>`。" in backups.inner_text()

    # The server's scheduler created the built-in jobs when it started.
    jobs = page.get_by_role("region", name="计划任务").get_by_role("table").inner_text()
    for expected in ("backup:nightly", "备份、验证备份、清理旧备份、执行日常检查", "archive:documents", "digest:supervisors"):
        assert expected in jobs, expected

    page.get_by_role("button", name="立即备份").click()
    page.wait_for_url(server + "/maintenance")
    flash = page.get_by_role("status").inner_text()
    made = re.search(r"备份 (\S+) 已完成并通过验证。", flash).group(1)
    row = backups.get_by_role("row", name=re.compile(re.escape(made)))
    assert row.get_by_text("已验证", exact=True).count() == 1
    assert checks.get_by_role("row", name=re.compile("最近一次备份")).get_by_text("正常").count() == 1
    # A result badge is one line even beside a long detail (it was squeezed to a character a line).
    lines = checks.locator(".badge").evaluate_all(
        "badges => badges.map(b => { const r = document.createRange(); r.selectNodeContents(b); "
        "return r.getClientRects().length; })")
    assert lines == [1] * 5, lines

    row.get_by_role("button", name=f"验证 {made}").click()
    page.wait_for_url(server + "/maintenance")
    assert page.get_by_role("status").inner_text() == f"备份 {made} 已完成并通过验证。"
    assert backups.get_by_role("row", name=re.compile(re.escape(made))).get_by_text("已验证", exact=True).count() == 1
    s = app.extensions["inkless.db"]()
    try:
        events = s.execute(select(AuditEvent.action, AuditEvent.detail).where(AuditEvent.object_id == made)
                           .order_by(AuditEvent.id)).all()
    finally:
        s.close()
    assert [a for a, _ in events] == ["backup_created", "backup_verified"]
    assert events[1].detail["ok"] is True

    admin.shot("maintenance")
    admin.check_accessibility("the maintenance page")
    assert not admin.problems, admin.problems


def test_a_clerk_gets_the_refusal_page_at_maintenance(server, browser):  # noqa: F811
    """R-OPS-1: the maintenance page is the system administrators' only; others see why, not a link."""
    clerk = Person(browser, server, "clerk")
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(server + "/")
    assert clerk.page.get_by_role("link", name="运行维护").count() == 0
    response = clerk.page.goto(server + "/maintenance")
    assert response.status == 403
    assert clerk.page.get_by_role("heading", level=1).inner_text() == "出错了"
    assert "只有系统管理员可以查看运维计划。" in clerk.page.locator("main").inner_text()
    clerk.check_accessibility("the refusal page")
    assert not clerk.problems, clerk.problems
