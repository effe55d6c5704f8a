"""The modeler speaks the page's language: bpmn-js's palette, context pad, replace menu, properties
panel and lint button show Chinese by default and English with ?lang=en (service/studio/modeler_strings.py
through the page's JSON dictionary and modeler.js's translate module), under the strict CSP."""
from __future__ import annotations

from tests.browser.test_studio import KEY, _api, server_token
from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures


def _words(page) -> dict[str, str]:
    """What the modeler shows for a few of bpmn-js's own strings, with the start event selected."""
    page.wait_for_selector("#studio[data-ready=true]")
    page.locator('.djs-element[data-element-id="start"]').click()
    page.locator('.djs-context-pad [data-action="replace"]').click()
    page.locator(".djs-popup").wait_for()
    words = {
        "palette": page.locator('.djs-palette [data-action="create.task"]').get_attribute("aria-label"),
        "context_pad": page.locator('.djs-context-pad [data-action="append.append-task"]').get_attribute("title"),
        "replace": page.locator('.djs-popup [data-id="replace-with-none-end"]').inner_text().strip(),
        "group": page.locator('[data-group-id="group-general"] .bio-properties-panel-group-header-title').inner_text(),
        "type": page.locator(".bio-properties-panel-header-type").text_content(),
        "lint": page.locator(".bjsl-button").get_attribute("title"),
    }
    page.keyboard.press("Escape")
    return words


def test_modeler_strings_are_chinese_by_default_and_english_on_request(server, browser):  # noqa: F811
    designer = Person(browser, server, "office_admin", viewport={"width": 1400, "height": 1000})
    designer.sign_in("office_admin")
    designer.page.wait_for_url(server + "/")
    _api(server, "POST", "/api/v1/studio", server_token(server, "office_admin"), {"key": KEY, "name": "语言"})

    designer.goto(f"/studio/{KEY}")
    chinese = _words(designer.page)
    designer.shot("studio-i18n-zh")
    assert chinese == {"palette": "创建任务", "context_pad": "追加任务", "replace": "结束事件", "group": "常规",
                       "type": "开始事件", "lint": "显示/隐藏检查结果"}

    designer.goto(f"/studio/{KEY}?lang=en")
    english = _words(designer.page)
    assert english == {"palette": "Create task", "context_pad": "Append task", "replace": "End event",
                       "group": "General", "type": "Start Event", "lint": "Toggle linting overlays"}
    assert not designer.problems, designer.problems  # no CSP violation for the JSON data block
