"""The staff workspace in a real browser (Chromium via Playwright) against a real server (issue 6).

An account application from start to finish, the way people do it: the department admin fills it
in (a wrong value first), the department head returns it with a reason, the applicant reads the
reason, amends and resubmits, both reviewers approve, and the new account signs in and sets its
own password. A screenshot of every page is kept in test-artifacts/.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, ROOT
from tests.service.test_account_application import APPLICATION
from tests.service.test_durability import Server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium); "
                ".ci/run installs it", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[dev]')")
axe = pytest.importorskip("axe_playwright_python.sync_playwright",
                          reason="axe-playwright-python (axe-core) is not installed (pip install -e '.[dev]')")


@pytest.fixture
def server(app, org):
    server = Server(app)
    server.env["INKLESS_INSECURE_COOKIES"] = "1"  # plain HTTP on 127.0.0.1
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.kill()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Person:
    """One person at their own browser window (own cookies), noting any CSP violation."""

    def __init__(self, browser, base: str, name: str, **context):
        self.context = browser.new_context(locale="zh-CN", **context)
        self.page = self.context.new_page()
        self.base = base
        self.name = name
        self.problems: list[str] = []
        # Refused forms answer 401/422 on purpose; anything else the console reports (a CSP
        # violation, a script error) is a problem.
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                     and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def goto(self, path: str):
        self.page.goto(self.base + path)

    def shot(self, label: str, full_page: bool = True):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{label}.png"), full_page=full_page)

    def check_accessibility(self, label: str):
        """axe-core finds no serious or critical violation (WCAG 2.1 A/AA rules and best practices)."""
        results = axe.Axe().run(self.page)
        bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility violations on {label}: {bad}"

    def sign_in(self, username: str, password: str = PASSWORD):
        self.goto("/signin")
        self.page.get_by_label("用户名").fill(username)
        self.page.get_by_label("密码").fill(password)
        self.page.get_by_role("button", name="登录").click()

    def open_task(self, name: str):
        self.goto("/tasks")
        self.page.get_by_role("link", name=name, exact=True).click()
        self.page.wait_for_load_state()


def fill_application(page, data: dict):
    labels = {"full_name": "姓名", "username": "登录名", "phone": "联系电话", "email": "电子邮箱",
              "department": "所属部门", "post": "岗位", "reason": "申请理由"}
    for key, label in labels.items():
        page.get_by_role("textbox", name=label, exact=True).fill(data[key])


def test_account_application_returned_amended_and_approved_in_the_browser(server, browser):
    admin = Person(browser, server, "office_admin")
    admin.goto("/")
    assert admin.page.url.endswith("/signin?next=/")
    admin.shot("01-sign-in")
    admin.check_accessibility("the sign-in page")
    admin.page.get_by_label("用户名").fill("office_admin")
    admin.page.get_by_label("密码").fill("not the password")
    admin.page.get_by_role("button", name="登录").click()
    assert admin.page.get_by_role("alert").inner_text() == "用户名或密码错误。"
    admin.shot("02-sign-in-wrong-password")
    admin.sign_in("office_admin")
    admin.page.wait_for_url(server + "/")
    admin.shot("03-home")
    admin.check_accessibility("the home page")

    # Start an account application and fill it in, first with a malformed login name.
    admin.page.get_by_role("link", name="发起流程").first.click()
    admin.shot("04-start-catalogue")
    admin.check_accessibility("the start page")
    admin.page.get_by_role("form", name="账号申请", exact=True).get_by_role("button", name="发起").click()
    admin.page.wait_for_url(re.compile(r".*/tasks/[0-9a-f-]{36}$"))
    assert admin.page.get_by_role("heading", level=1).inner_text() == "填写账号申请"
    admin.shot("05-application-form")
    admin.check_accessibility("the task page")
    fill_application(admin.page, dict(APPLICATION, username="X!"))
    admin.page.get_by_role("checkbox", name="检查员").check()
    admin.page.get_by_role("button", name="提交").click()
    username = admin.page.get_by_role("textbox", name="登录名", exact=True)
    assert username.get_attribute("aria-invalid") == "true"
    assert username.input_value() == "X!"  # the input is kept
    assert admin.page.locator("#f-username-error").inner_text().endswith("登录名格式不正确")
    assert admin.page.get_by_role("checkbox", name="检查员").is_checked()
    assert admin.page.evaluate("document.activeElement.id") == "error-summary"
    admin.shot("06-application-form-errors")
    admin.check_accessibility("the task page with field errors")
    username.fill("maxy")
    admin.page.get_by_role("button", name="提交").click()
    admin.page.wait_for_url(server + "/tasks")
    assert "已完成：填写账号申请。" in admin.page.get_by_role("status").first.inner_text()

    # The department head returns it with a reason (a reason is required), on a phone.
    head = Person(browser, server, "office_head", viewport={"width": 390, "height": 844}, is_mobile=True,
                  has_touch=True)
    head.sign_in("office_head")
    head.goto("/tasks")
    head.shot("07-head-inbox-mobile")
    head.check_accessibility("the inbox")
    head.open_task("部门负责人审核")
    assert "马小云" in head.page.locator(".context").inner_text()
    head.shot("08-head-review-mobile")
    head.page.get_by_role("radio", name="退回修改").check()
    head.page.get_by_role("button", name="提交审核结论").click()
    opinion = head.page.get_by_role("textbox", name="审核意见")
    assert opinion.get_attribute("aria-invalid") == "true"
    assert head.page.get_by_role("radio", name="退回修改").is_checked()
    head.shot("09-head-review-needs-reason-mobile")
    head.check_accessibility("the review page")
    opinion.fill("岗位填写不准确，请写明具体岗位")
    head.page.get_by_role("button", name="提交审核结论").click()
    head.page.wait_for_url(server + "/tasks")

    # The applicant sees the reason, amends and resubmits.
    admin.open_task("修改申请")
    assert "岗位填写不准确，请写明具体岗位" in admin.page.locator(".work").inner_text()
    admin.shot("10-amend-with-reason")
    admin.page.get_by_role("textbox", name="岗位", exact=True).fill("综合档案管理员")
    admin.page.get_by_role("radio", name="重新提交").check()
    admin.page.get_by_role("button", name="提交").click()
    admin.page.wait_for_url(server + "/tasks")

    # Both reviewers approve; the platform's reviewer sees the initial password once.
    head.open_task("部门负责人审核")
    assert "综合档案管理员" in head.page.locator(".context").inner_text()
    assert "岗位填写不准确" in head.page.locator(".context").inner_text()  # the earlier opinion
    head.page.get_by_role("radio", name="同意").check()
    head.page.get_by_role("button", name="提交审核结论").click()
    head.page.wait_for_url(server + "/tasks")

    platform = Person(browser, server, "platform")
    platform.sign_in("platform")
    platform.goto("/tasks")
    platform.shot("11-platform-inbox")
    platform.open_task("平台管理部门终审")
    platform.shot("12-platform-review")
    platform.page.get_by_role("radio", name="同意").check()
    platform.page.get_by_role("button", name="提交审核结论").click()
    password = platform.page.locator("code.secret").inner_text()
    platform.shot("13-account-created-password-once")

    # The applicant follows the request: timeline, then the printable record.
    admin.goto("/requests")
    admin.page.locator("details summary").first.click()
    timeline = admin.page.locator(".timeline").first.inner_text()
    for expected in ("填写账号申请", "部门负责人审核", "退回修改", "岗位填写不准确", "平台管理部门终审", "账号已开通"):
        assert expected in timeline, expected
    admin.shot("14-my-requests")
    admin.check_accessibility("my requests")
    admin.page.get_by_role("link", name=re.compile("账号申请 #")).first.click()
    admin.shot("15-request-detail")
    admin.page.get_by_role("link", name="可打印的办理记录").click()
    assert "综合档案管理员" in admin.page.locator(".record").inner_text()
    admin.shot("16-record")
    admin.check_accessibility("the record page")
    admin.page.emulate_media(media="print")
    admin.shot("17-record-print")
    admin.page.emulate_media(media="screen")

    # English on a switch, and it sticks.
    admin.page.get_by_role("link", name="English").click()
    assert admin.page.get_by_role("link", name="My requests").is_visible()
    admin.goto("/tasks")
    assert admin.page.get_by_role("heading", level=1).inner_text() == "My tasks"
    admin.shot("18-inbox-english")

    # The new account signs in and must choose its own password first.
    newcomer = Person(browser, server, "maxy")
    newcomer.sign_in("maxy", password)
    newcomer.page.wait_for_url(re.compile(r".*/password.*"))
    newcomer.shot("19-change-initial-password")
    newcomer.page.locator("#old_password").fill(password)
    newcomer.page.locator("#new_password").fill("a passphrase of my own")
    newcomer.page.locator("#new_password_again").fill("a passphrase of my own")
    newcomer.page.get_by_role("button", name="修改密码").click()
    newcomer.page.wait_for_url(server + "/")
    assert "欢迎" in newcomer.page.get_by_role("heading", level=1).inner_text()
    newcomer.shot("20-newcomer-home")

    for person in (admin, head, platform, newcomer):
        assert not person.problems, f"{person.name}'s browser reported: {person.problems}"
