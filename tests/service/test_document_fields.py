"""Documents attached in task forms (issue 5; R-DOC-4, R-SEC-4): a form field picks documents the
user may read (or uploads one right there), the server refuses one they may not read, and the
request shows each attachment as a link only to those allowed to read it."""
from __future__ import annotations

import io
import json
import re

import pytest

from tests.service import test_pages
from tests.service.documents_helpers import uploaded
from tests.service.test_document_pages import upload_through_page
from tests.service.test_page_forms import BPMN
from tests.service.test_pages import Browser, text

FORM = {
    "type": "object",
    "required": ["summary"],
    "properties": {
        "summary": {"type": "string", "title": "说明"},
        "attachments": {"type": "array", "title": "附件", "format": "documents", "items": {"type": "integer"}},
        "parts": {"type": "array", "title": "分项", "items": {"type": "object", "properties": {
            "name": {"type": "string", "title": "名称"},
            "file": {"type": "integer", "format": "document", "title": "分项文件"}}}},
    },
}
DIAGRAM = BPMN.replace("business_trip", "report_with_files").replace("出差登记", "报送材料") \
    .replace("trip.uischema.json", "report.uischema.json").replace("trip.json", "report.json")
browser = test_pages.browser  # the fixture: one person's browser, signed in


@pytest.fixture
def report_task(app, login):
    files = [(io.BytesIO(DIAGRAM.encode()), "report.bpmn"),
             (io.BytesIO(json.dumps(FORM, ensure_ascii=False).encode()), "report.json"),
             (io.BytesIO(b"{}"), "report.uischema.json")]
    r = login("sysadmin").post("/api/v1/process-definitions", data={"files": files},
                               content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    clerk = Browser(app)
    clerk.sign_in("clerk")
    clerk.get("/start")
    r = clerk.post("/start/report_with_files")
    assert r.status_code == 302
    return clerk, r.headers["Location"]


def test_attach_readable_documents_refuse_others_and_withhold_titles(login, browser, report_task):
    clerk, task_url = report_task
    mine = uploaded(login("clerk"), title="我的周报")
    foreign = uploaded(login("fin_head"), title="财务内部材料")
    page = text(clerk.get(task_url))
    assert f'name="attachments" value="{mine["id"]}"' in page
    assert "财务内部材料" not in page and f'value="{foreign["id"]}"' not in page

    # Upload right there: the page comes back with the new document chosen.
    link = re.search(r'href="(/documents/upload\?next=[^"]+)"', page).group(1).replace("&amp;", "&")
    assert link.startswith(f"/documents/upload?next={task_url}")
    clerk.get(link)
    r = upload_through_page(clerk, title="现场上传的附件", keywords="附件", action_from=link)
    assert r.status_code == 303 and r.headers["Location"].startswith(task_url + "?field=attachments&attach=")
    new_id = int(r.headers["Location"].rsplit("=", 1)[1])
    page = text(clerk.get(r.headers["Location"]))
    assert re.search(rf'value="{new_id}"\s+checked', page)

    # A document the user may not read: refused, the message next to the field names it.
    r = clerk.post(task_url, [("summary", "本周材料"), ("attachments.present", "1"),
                              ("attachments", str(mine["id"])), ("attachments", str(foreign["id"]))])
    assert r.status_code == 422
    assert re.search(r'id="f-attachments-error">.*附件', text(r))
    # Inside a repeating section too.
    r = clerk.post(task_url, [("summary", "本周材料"), ("parts.present", "1"), ("parts.0.name", "第一部分"),
                              ("parts.0.file", str(foreign["id"]))])
    assert r.status_code == 422
    assert re.search(r'id="f-parts-0-file-error">.*分项文件', text(r))
    r = clerk.post(task_url, [("summary", "本周材料"), ("attachments.present", "1"),
                              ("attachments", str(mine["id"])), ("attachments", str(new_id))])
    assert r.status_code == 302, text(r)

    instance_id = login("clerk").get("/api/v1/process-instances?process_key=report_with_files").get_json()["items"][0]["id"]
    request_page = text(clerk.get(f"/requests/{instance_id}"))
    assert f'href="/documents/{mine["id"]}">我的周报</a>' in request_page
    assert f'href="/documents/{new_id}">现场上传的附件</a>' in request_page
    # The supervisor sees the request but may read neither document: the titles are withheld.
    other = text(browser("supervisor").get(f"/requests/{instance_id}"))
    assert "我的周报" not in other and "现场上传的附件" not in other
    assert other.count("标题不可见") == 2


def test_file_publication_picks_the_document_from_the_library(login, browser):
    """The publication form's document field is a picker of the author's documents (R-WF-2; file management's publication procedure, which has no ID)."""
    document = uploaded(login("clerk"), title="待发布的制度")
    clerk = browser("clerk")
    clerk.get("/start")
    r = clerk.post("/start/file_publication", {"business_key": "PUB-1"})
    page = text(clerk.get(r.headers["Location"]))
    assert re.search(rf'type="radio" id="f-document_id-1" name="document_id" value="{document["id"]}"', page)
    assert "待发布的制度" in page
    r = clerk.post(r.headers["Location"], {"document_id": str(document["id"]), "audience": "all", "reason": "请发布"})
    assert r.status_code == 302, text(r)

