"""Functional groups in a real browser against a real server (issue 14; R-ACC-3, R-WF-1): OFFICE's
department administrator opens the groups page from their account page, creates group hr and adds
a member; a leave request whose lane is hr is deployed and started, and the member finds the review
in their task list. Screenshot: test-artifacts/groups.png."""
from __future__ import annotations

import re

from sqlalchemy import select

from service.models import AuditEvent
from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures
from tests.service.flows import complete, only_task
from tests.service.test_groups import deploy, leave_request


def test_a_department_admin_creates_group_hr_and_its_member_gets_the_lanes_task(server, browser, app, login):  # noqa: F811
    admin = Person(browser, server, "office_admin")
    admin.sign_in("office_admin")
    page = admin.page
    page.wait_for_url(server + "/")
    admin.goto("/account")
    page.get_by_role("link", name="职能组").click()
    page.wait_for_url(server + "/groups")
    assert page.get_by_role("heading", level=1).inner_text() == "职能组"
    admin.check_accessibility("the groups page")

    page.get_by_label("组代码").fill("hr")
    page.get_by_label("中文名称").fill("人事组")
    page.get_by_label("英文名称（可选）").fill("Human resources")
    # A department administrator creates in their own department only.
    assert page.get_by_label("部门").locator("option").all_inner_texts() == ["办公室 (OFFICE)"]
    page.get_by_role("button", name="创建职能组").click()
    page.wait_for_url(server + "/groups")
    assert "职能组 hr 已创建。" in page.get_by_role("status").inner_text()

    row = page.locator("#group-hr")
    assert "人事组" in row.inner_text() and "OFFICE" in row.inner_text()
    choices = row.get_by_role("combobox", name="职能组 hr 的新成员")
    assert "fin_head" not in " ".join(choices.locator("option").all_inner_texts())
    choices.select_option("clerk")
    row.get_by_role("button", name="加入职能组 hr").click()
    page.wait_for_url(server + "/groups")
    assert page.get_by_role("status").inner_text() == "已将 clerk 加入职能组 hr。"
    assert re.search(r"clerk \(clerk\)", page.locator("#group-hr").inner_text())
    admin.shot("groups")
    assert admin.problems == []

    # The designer (office_admin is in group designer) deploys a leave request whose lane is hr.
    assert deploy(login("office_admin"), leave_request()).status_code == 201
    head = login("office_head")
    instance = head.post("/api/v1/process-instances", json={"process_key": "leave_hr"}).get_json()["id"]
    complete(head, only_task(head, instance_id=instance), {})
    member = Person(browser, server, "clerk")
    member.sign_in("clerk")
    member.page.wait_for_url(server + "/")
    member.goto("/tasks")
    assert member.page.get_by_role("link", name="人事审核", exact=True).count() == 1

    s = app.extensions["inkless.db"]()
    try:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "group")
                            .order_by(AuditEvent.id)).all()
        assert actions == ["group_created", "group_member_added"]
    finally:
        s.close()
