"""The document library in a real browser (Chromium via Playwright) against a real server (issue 5).

A clerk uploads a DOCX through the upload page, finds it by a Chinese word inside its text, and
shares it read-only with a colleague, who opens and downloads it but is offered no way to add a
version. Screenshots in test-artifacts/; axe-core checks every page.
"""
from __future__ import annotations

import re

from tests.browser import test_workspace as workspace
from tests.service.documents_helpers import docx

Person = workspace.Person
server = workspace.server  # fixtures: the platform on a port, and Chromium
browser = workspace.browser

REPORT = docx(["第四季度工作安排", "本季度重点推进绩效考核工作，各部门按时报送材料。"])


def test_upload_search_and_share_read_only_in_the_browser(server, browser):
    clerk = Person(browser, server, "clerk")
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(server + "/")
    clerk.page.get_by_role("navigation").get_by_role("link", name="文档库").click()
    clerk.page.wait_for_url(server + "/documents")
    clerk.check_accessibility("the empty library")
    clerk.page.get_by_role("link", name="上传文件").click()
    clerk.shot("doc-01-upload-form")
    clerk.check_accessibility("the upload page")

    page = clerk.page
    page.get_by_role("textbox", name="标题", exact=True).fill("第四季度工作安排")
    page.get_by_role("textbox", name="摘要", exact=True).fill("办公室第四季度的工作安排")
    page.get_by_role("textbox", name="关键词", exact=True).fill("工作安排，第四季度")
    page.get_by_role("combobox", name="密级", exact=True).select_option("内部")
    page.locator("#f-file").set_input_files(files=[{
        "name": "工作安排.docx", "buffer": REPORT,
        "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}])
    page.get_by_role("button", name="上传", exact=True).click()
    page.wait_for_url(re.compile(r".*/documents/\d+$"))
    document_url = page.url
    assert page.get_by_role("heading", level=1).inner_text() == "第四季度工作安排"
    assert "已上传" in page.get_by_role("status").first.inner_text()
    clerk.shot("doc-02-document-page")
    clerk.check_accessibility("the document page")

    # A word only in the DOCX's text, not in its title, abstract or keywords.
    page.get_by_role("navigation").get_by_role("link", name="文档库").click()
    page.get_by_role("searchbox", name="搜索标题、关键词和正文").fill("绩效")
    page.get_by_role("button", name="搜索", exact=True).click()
    page.get_by_role("link", name="第四季度工作安排").wait_for()
    clerk.shot("doc-03-search-results")
    clerk.check_accessibility("the search results")

    # Share it read-only with a colleague of another department.
    page.goto(document_url)
    page.get_by_role("textbox", name="同事的用户名").fill("fin_head")
    page.get_by_role("radio", name="只读").check()
    page.get_by_role("button", name="共享", exact=True).click()
    page.wait_for_url(document_url)
    assert "fin_head" in page.locator("#shares-h + table").inner_text()
    clerk.shot("doc-04-shared")

    colleague = Person(browser, server, "fin_head")
    colleague.sign_in("fin_head")
    colleague.page.wait_for_url(server + "/")
    colleague.goto("/documents?scope=shared")
    colleague.page.get_by_role("link", name="第四季度工作安排").click()
    colleague.page.wait_for_url(document_url)
    assert "只读" in colleague.page.locator(".facts").inner_text()
    assert colleague.page.get_by_role("heading", name="上传新版本").count() == 0
    assert colleague.page.get_by_role("button", name=re.compile("恢复第")).count() == 0
    with colleague.page.expect_download() as download:
        colleague.page.get_by_role("link", name="下载当前版本").click()
    assert download.value.suggested_filename.endswith(".docx")
    colleague.shot("doc-05-colleague-reads")
    colleague.check_accessibility("the document page, read only")
    assert not clerk.problems and not colleague.problems, clerk.problems + colleague.problems


def test_a_task_form_uploads_and_attaches_a_document_without_losing_what_was_typed(server, browser):
    """The publication form's document field: upload in a dialog, the new document is chosen, the
    reason typed before is still there; the request then links the document."""
    clerk = Person(browser, server, "clerk")
    clerk.sign_in("clerk")
    clerk.page.wait_for_url(server + "/")
    page = clerk.page
    clerk.goto("/start")
    page.get_by_role("form", name="文件发布", exact=True).get_by_role("button", name="发起").click()
    page.wait_for_url(re.compile(r".*/tasks/[0-9a-f-]{36}$"))
    task_url = page.url
    page.get_by_role("textbox", name="发布说明", exact=True).fill("请发布到全平台")
    page.get_by_role("radio", name="全平台").check()
    page.get_by_role("link", name="为此项上传新文件").click()
    dialog = page.get_by_role("dialog", name="上传文件")
    dialog.get_by_role("textbox", name="标题", exact=True).fill("安全管理制度")
    dialog.get_by_role("textbox", name="摘要", exact=True).fill("平台安全管理制度全文")
    dialog.get_by_role("textbox", name="关键词", exact=True).fill("安全，制度")
    dialog.get_by_role("combobox", name="密级", exact=True).select_option("内部")
    clerk.shot("doc-06-upload-dialog")
    clerk.check_accessibility("the upload dialog on a task page")
    dialog.locator("#f-file").set_input_files(files=[{
        "name": "制度.txt", "mimeType": "text/plain", "buffer": "第一条 为加强平台安全管理,制定本制度。\n".encode()}])
    dialog.get_by_role("button", name="上传", exact=True).click()
    chosen = page.get_by_role("radio", name=re.compile("安全管理制度"))
    chosen.wait_for()
    assert chosen.is_checked()
    assert page.url == task_url  # never left the task
    assert page.get_by_role("textbox", name="发布说明", exact=True).input_value() == "请发布到全平台"
    clerk.shot("doc-07-document-chosen")
    page.get_by_role("button", name="提交").click()
    page.wait_for_url(server + "/tasks")

    clerk.goto("/requests")
    page.get_by_role("link", name=re.compile("文件发布 #")).first.click()
    page.get_by_role("link", name="安全管理制度").wait_for()
    clerk.shot("doc-08-request-links-the-document")
    assert not clerk.problems, clerk.problems
