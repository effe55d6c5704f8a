"""The analytics pages in a real browser (R-WF-4, R-SUP-3): the trend charts and the heatmap draw
under the strict CSP, and the pages pass the accessibility check. Screenshots in test-artifacts/."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures
from tests.service.test_analytics import History, z


@pytest.fixture
def worked(app, org):
    """A month of account applications (a diagram with a layout): filling takes minutes, the
    department head's review hours, sometimes returned."""
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        h = History(s, "account_application")
        for i in range(6):
            row = h.instance(1, "OFFICE", by="office_admin")
            done = z(2026, 11, 2 + i, 3)
            h.step(row, "fill_application", done, 600 + 60 * i, wait=30)
            h.step(row, "dept_head_review", done + timedelta(hours=5), 3 * 3600 + 600 * i,
                   decision="return" if i % 3 == 0 else "approve", by="office_head")
        s.commit()
        s.close()


def test_dashboard_charts_and_heatmap_draw_in_the_browser(worked, server, browser):  # noqa: F811
    supervisor = Person(browser, server, "supervisor")
    supervisor.sign_in("supervisor")
    supervisor.goto("/analytics?period=2026-11")
    page = supervisor.page
    page.wait_for_selector(".charts[data-state='drawn']", timeout=20_000)
    assert page.locator(".chart canvas").count() == 5  # first-time pass rate beside the eventual one (issue 18)
    assert page.locator(".chart-figure details table").count() == 5  # each chart's numbers as a table
    supervisor.shot("analytics-dashboard")
    supervisor.check_accessibility("the indicator dashboard")

    supervisor.goto("/analytics/optimise?process=account_application&period=2026-11")
    page.wait_for_selector(".bpmn-badge.is-heat", timeout=20_000)
    heat = page.locator(".bpmn-badge.is-heat")
    # filling: 600…900 s, mean 12.5 min; the head's review: 3 h … 3 h 50 min, mean 3.4 h (the slowest)
    assert sorted(heat.all_inner_texts()) == ["12 分钟", "3.4 小时"]
    supervisor.shot("analytics-optimise")
    supervisor.check_accessibility("the optimisation view")
    assert supervisor.problems == []
