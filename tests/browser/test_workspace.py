"""The staff workspace in a real browser (Chromium via Playwright) against a real server (issue 6).

An account application from start to finish, the way people do it: a new employee without an
account applies on the public page (a wrong value first) and gets a tracking code, the department
head returns it with a reason, the applicant opens the tracking link, reads the reason, amends and
resubmits, both reviewers approve, and the new account signs in with the initial password the
platform's reviewer was shown, and sets its own. A screenshot of every page is kept in
test-artifacts/. Then the language: `?lang=en` and the profile setting leave no Chinese interface
text on the main pages.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, ROOT
from tests.service.test_account_application import APPLICATION
from tests.service.test_durability import Server
from tests.service.test_workspace_pages import CJK, user_data

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
        # Wait for the task's page itself: the inbox is already loaded, and reading it races the click.
        with self.page.expect_navigation():
            self.page.get_by_role("link", name=name, exact=True).click()


def fill_application(page, data: dict, department: str | None = None):
    """Type an application; on the public page the department is chosen by name from a list."""
    labels = {"full_name": "姓名", "username": "登录名", "phone": "联系电话", "email": "电子邮箱",
              "post": "岗位", "reason": "申请理由"}
    if department is None:
        labels["department"] = "所属部门"
    else:
        page.get_by_role("combobox", name="所属部门").select_option(label=department)
    for key, label in labels.items():
        page.get_by_role("textbox", name=label, exact=True).fill(data[key])


def test_a_new_employee_applies_publicly_is_returned_amends_and_signs_in(server, browser):
    """R-ACC-1, R-ACC-2, R-WF-2, R-WF-3: the must-show scenario of issue 6."""
    newcomer = Person(browser, server, "newcomer")
    newcomer.goto("/signin")
    newcomer.shot("01-sign-in")
    newcomer.check_accessibility("the sign-in page")
    newcomer.page.get_by_role("link", name="申请账号").click()
    newcomer.page.wait_for_url(server + "/apply")
    newcomer.shot("02-public-application")
    newcomer.check_accessibility("the public application page")

    # The newcomer fills the form, first with a malformed login name, and chooses the department.
    fill_application(newcomer.page, dict(APPLICATION, username="X!"), department="办公室")
    newcomer.page.get_by_role("checkbox", name="检查员").check()
    newcomer.page.get_by_role("button", name="提交申请").click()
    username = newcomer.page.get_by_role("textbox", name="登录名", exact=True)
    assert username.get_attribute("aria-invalid") == "true"
    assert username.input_value() == "X!"  # the input is kept
    assert newcomer.page.locator("#f-username-error").inner_text().endswith("登录名格式不正确")
    assert newcomer.page.evaluate("document.activeElement.id") == "error-summary"
    newcomer.shot("03-public-application-errors")
    newcomer.check_accessibility("the public application with field errors")
    username.fill("maxy")
    newcomer.page.get_by_role("button", name="提交申请").click()
    newcomer.page.wait_for_url(server + "/apply")
    code = newcomer.page.locator("#tracking-code").inner_text()
    link = newcomer.page.locator("#tracking-link").get_attribute("href")
    assert len(code) >= 32 and link.endswith("/apply/track/" + code)
    newcomer.shot("04-tracking-code-once")
    newcomer.check_accessibility("the tracking-code page")

    # The department head returns it with a reason (a reason is required), on a phone.
    head = Person(browser, server, "office_head", viewport={"width": 390, "height": 844}, is_mobile=True,
                  has_touch=True)
    head.sign_in("office_head")
    head.page.wait_for_url(server + "/")
    head.goto("/notifications")
    assert "部门负责人审核" in head.page.locator(".notifications").inner_text()
    head.shot("05-head-notifications-mobile")
    head.check_accessibility("the notifications page")
    head.goto("/tasks")
    head.shot("06-head-inbox-mobile")
    head.check_accessibility("the inbox")
    head.open_task("部门负责人审核")
    assert "马小云" in head.page.locator(".context").inner_text()
    head.page.wait_for_selector(".bpmn[data-state=ready]")
    assert head.page.locator(".bpmn .djs-element.is-current[data-element-id=dept_head_review]").count() == 1
    head.shot("07-head-review-mobile")
    head.page.get_by_role("radio", name="退回修改").check()
    head.page.get_by_role("button", name="提交审核结论").click()
    opinion = head.page.get_by_role("textbox", name="审核意见")
    assert opinion.get_attribute("aria-invalid") == "true"
    head.shot("08-head-review-needs-reason-mobile")
    head.check_accessibility("the review page")
    # A draft of the opinion, kept for later (only the head sees it).
    opinion.fill("岗位填写不准确，请写明具体岗位")
    head.page.get_by_role("radio", name="退回修改").check()
    head.page.get_by_role("button", name="保存草稿").click()
    head.page.wait_for_selector("#draft-note")
    assert head.page.get_by_role("textbox", name="审核意见").input_value() == "岗位填写不准确，请写明具体岗位"
    head.shot("09-head-review-draft-mobile")
    head.page.get_by_role("button", name="提交审核结论").click()
    head.page.wait_for_url(server + "/tasks")

    # The applicant opens the tracking link, reads the reason, amends and resubmits.
    newcomer.page.goto(link)
    assert "岗位填写不准确，请写明具体岗位" in newcomer.page.locator("main").inner_text()
    newcomer.shot("10-tracking-returned-with-reason")
    newcomer.check_accessibility("the tracking page with the amend form")
    newcomer.page.get_by_role("textbox", name="岗位", exact=True).fill("综合档案管理员")
    newcomer.page.get_by_role("radio", name="重新提交").check()
    newcomer.page.get_by_role("button", name="提交").click()
    newcomer.page.wait_for_url(link)
    assert "综合档案管理员" in newcomer.page.locator("main").inner_text()
    newcomer.shot("11-tracking-resubmitted")

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
    platform.shot("12-platform-inbox")
    platform.open_task("平台管理部门终审")
    platform.shot("13-platform-review")
    platform.page.get_by_role("radio", name="同意").check()
    platform.page.get_by_role("button", name="提交审核结论").click()
    password = platform.page.locator("code.secret").inner_text()
    platform.shot("14-account-created-password-once")

    # The tracking page says the account exists (not its password), with the whole timeline.
    newcomer.page.goto(link)
    assert "maxy" in newcomer.page.locator("#account-created").inner_text()
    timeline = newcomer.page.locator(".timeline").inner_text()
    for expected in ("填写账号申请", "部门负责人审核", "退回修改", "岗位填写不准确", "平台管理部门终审", "账号已开通"):
        assert expected in timeline, expected
    assert password not in newcomer.page.content()
    newcomer.page.wait_for_selector(".bpmn[data-state=ready]")
    newcomer.shot("15-tracking-account-created")
    newcomer.check_accessibility("the tracking page when finished")

    # The department's admin sees the request in the start catalogue's world too (axe on the start page).
    admin = Person(browser, server, "office_admin")
    admin.sign_in("office_admin")
    admin.page.wait_for_url(server + "/")
    admin.page.get_by_role("link", name="发起流程").first.click()
    admin.shot("16-start-catalogue")
    admin.check_accessibility("the start page")

    # The new account signs in with the initial password and must choose its own first.
    newcomer.sign_in("maxy", password)
    newcomer.page.wait_for_url(re.compile(r".*/password.*"))
    newcomer.shot("17-change-initial-password")
    newcomer.page.locator("#old_password").fill(password)
    newcomer.page.locator("#new_password").fill("a passphrase of my own")
    newcomer.page.locator("#new_password_again").fill("a passphrase of my own")
    newcomer.page.get_by_role("button", name="修改密码").click()
    newcomer.page.wait_for_url(server + "/")
    assert "欢迎" in newcomer.page.get_by_role("heading", level=1).inner_text()
    newcomer.shot("18-newcomer-home")

    for person in (newcomer, head, platform, admin):
        assert not person.problems, f"{person.name}'s browser reported: {person.problems}"


# The interface text of a page: everything but the language switch (marked lang=zh-CN) and the diagram.
VISIBLE_INTERFACE_TEXT = """() => {
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('[lang^="zh"], script, style, .bpmn').forEach((el) => el.remove());
  return clone.innerText;
}"""


def test_english_by_link_and_by_profile_leaves_no_chinese_interface_text(app, server, browser):
    """The language standard (no regulation clause; issue 17): ?lang=en, then the profile setting, switch every visible interface string."""
    clerk = Person(browser, server, "clerk")
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(server + "/")
    # Names of processes, forms, departments and people are data, in the language they were given in.
    data = user_data(app)

    def leftovers(path: str) -> list[str]:
        clerk.goto(path)
        seen = clerk.page.evaluate(VISIBLE_INTERFACE_TEXT)
        for value in data:
            seen = seen.replace(value, " ")
        return [line for line in seen.splitlines() if CJK.search(line)]

    pages = ("/", "/tasks", "/start", "/requests", "/notifications", "/settings")
    clerk.goto("/?lang=en")
    for path in pages:
        assert not leftovers(path), (path, leftovers(path))
    clerk.shot("20-home-english")
    clerk.goto("/?lang=zh")
    assert clerk.page.get_by_role("heading", level=1).inner_text() != "Welcome"
    clerk.goto("/settings")
    clerk.page.get_by_label("English").check()
    clerk.page.get_by_role("button", name="保存").click()
    clerk.page.wait_for_url(server + "/settings")
    assert clerk.page.get_by_role("status").inner_text().strip() == "Your settings have been saved."
    clerk.shot("21-settings-english")
    clerk.check_accessibility("the settings page")
    for path in pages:
        assert not leftovers(path), ("profile", path, leftovers(path))
    assert not clerk.problems, clerk.problems
