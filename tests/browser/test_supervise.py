"""The supervisors' live overview in a real browser (R-WF-3, R-SUP-1): badges on the diagram count
the instances at each step and follow them as they move, selecting a step lists its instances,
and an instance's page shows its path and timeline. Screenshots go to test-artifacts/."""
from __future__ import annotations

import re

from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures
from tests.service.flows import complete, only_task
from tests.service.test_supervise import seed_applications


def badge(page, element: str, kind: str = "count") -> str | None:
    """The text of one badge drawn on `element`, or None when there is none."""
    found = page.locator(f'.djs-overlays[data-container-id="{element}"] .bpmn-badge.is-{kind}')
    return found.inner_text() if found.count() else None


def test_supervisor_follows_account_applications_on_the_diagram(server, browser, login):  # noqa: F811
    at = seed_applications(login)  # 1 at the form, 2 at the head's review, 1 at the platform's
    supervisor = Person(browser, server, "supervisor")
    supervisor.sign_in("supervisor")
    page = supervisor.page
    page.get_by_role("link", name="流程监督").click()
    overview = page.get_by_role("row", name=re.compile("账号申请"))
    assert overview.get_by_role("cell").nth(1).inner_text() == "4"  # running
    overview.get_by_role("link", name="账号申请").click()
    page.wait_for_selector('#diagram[data-state="ready"]')
    page.wait_for_selector(".bpmn-badge")
    assert badge(page, "dept_head_review") == "2"
    assert badge(page, "platform_review") == "1"
    assert badge(page, "fill_application") == "1"
    assert badge(page, "amend_application") is None
    assert page.locator('.djs-overlays[data-container-id="dept_head_review"] .bpmn-badge').first.get_attribute(
        "aria-label") == "2 个实例停留在此"

    # Live: the head approves one application; within a refresh the badges follow it.
    head = login("office_head")
    complete(head, only_task(head, instance_id=at["dept_head_review"][0]), {"decision": "approve", "opinion": "同意"})
    page.wait_for_function("""() => {
        const b = document.querySelector('.djs-overlays[data-container-id="platform_review"] .bpmn-badge.is-count');
        return b && b.textContent === '2';
    }""", timeout=15000)
    assert badge(page, "dept_head_review") == "1"
    counts = page.locator('#counts tr[data-element="platform_review"] td[data-count="count"]')
    assert counts.inner_text() == "2"  # the table for screen readers follows too

    # Selecting a step lists the instances waiting there now (read again from the server).
    page.locator('.djs-element[data-element-id="platform_review"]').click()
    page.wait_for_selector('#waiting-list[data-selected="platform_review"]')
    status = page.locator("[data-waiting-status]")
    assert status.inner_text() == "步骤：平台管理部门终审"
    visible = page.locator("#waiting-list tbody tr:visible")
    shown = sorted(int(re.search(r"#(\d+)", t).group(1)) for t in visible.all_inner_texts())
    assert shown == sorted(at["platform_review"] + [at["dept_head_review"][0]])
    assert "element=platform_review" in page.url
    supervisor.shot("supervise-overview")
    supervisor.check_accessibility("the supervision overview")

    # One instance: its path on the diagram and its timeline.
    page.get_by_role("link", name=re.compile(f"#{at['dept_head_review'][0]} ")).click()
    page.wait_for_selector('#diagram[data-state="ready"]')
    assert page.locator('.djs-element.is-current[data-element-id="platform_review"]').count() == 1
    assert page.locator('.djs-element.is-completed[data-element-id="dept_head_review"]').count() == 1
    timeline = page.locator("#timeline").inner_text()
    for expected in ("填写账号申请", "部门负责人审核", "同意"):
        assert expected in timeline, expected
    supervisor.shot("supervise-instance")
    supervisor.check_accessibility("the supervised instance")
    assert not supervisor.problems, supervisor.problems
