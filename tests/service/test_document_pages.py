"""The document library as pages, through the test client (issue 5: R-DOC-1 … R-DOC-5, R-SEC-4).

Every action goes through the page routes with the session's CSRF token, exactly as a browser
sends it; uploads are multipart with the token in the form's action like the page's own form."""
from __future__ import annotations

import io
import re

from sqlalchemy import select

from service.models import AuditEvent
from tests.service import test_pages
from tests.service.documents_helpers import docx, set_clearance
from tests.service.test_pages import text

browser = test_pages.browser  # the fixture: one person's browser, signed in

UPLOAD_ACTION = re.compile(r'action="(/documents/upload\?csrf_token=[^"]+)"')
VERSION_ACTION = re.compile(r'action="(/documents/\d+/versions\?csrf_token=[^"]+)"')


def upload_through_page(b, data: bytes = "平台运维值班记录。\n".encode(), filename: str = "note.txt",
                        action_from: str = "/documents/upload", **fields):
    page = text(b.get(action_from))
    action = UPLOAD_ACTION.search(page).group(1).replace("&amp;", "&")
    form = {"title": "值班记录", "abstract": "十一月的值班记录", "keywords": "值班,运维", "security_level": "内部"}
    form.update(fields)
    form = {k: v for k, v in form.items() if v is not None}
    form["file"] = (io.BytesIO(data), filename)
    return b.client.post(action, data=form, content_type="multipart/form-data")


def uploaded_through_page(b, **kw) -> int:
    r = upload_through_page(b, **kw)
    assert r.status_code == 303, text(r)
    return int(r.headers["Location"].rsplit("/", 1)[1])


def test_the_library_page_lists_searches_and_filters(browser):
    b = browser("clerk")
    home = text(b.get("/"))
    assert 'href="/documents"' in home and "文档库" in home
    first = uploaded_through_page(b, data=docx(["本季度绩效考核工作安排如下。"]), filename="plan.docx",
                                  title="考核安排", keywords="考核")
    uploaded_through_page(b, title="另一个文件", keywords="其他", security_level="公开")
    page = text(b.get("/documents"))
    assert "考核安排" in page and "另一个文件" in page
    found = text(b.get("/documents?q=考核"))
    assert "考核安排" in found and "另一个文件" not in found
    # A word inside the DOCX's text, not in its metadata.
    assert "考核安排" in text(b.get("/documents?q=绩效"))
    only_public = text(b.get("/documents?level=公开"))
    assert "另一个文件" in only_public and "考核安排" not in only_public
    assert f'href="/documents/{first}"' in text(b.get("/documents?scope=mine"))
    assert "考核安排" not in text(b.get("/documents?scope=shared"))
    # The office's administrator reads every document of the office; the finance head none of them.
    assert f'href="/documents/{first}"' in text(browser("office_admin").get("/documents?scope=department"))
    assert f'href="/documents/{first}"' not in text(browser("fin_head").get("/documents"))


def add_version_through_page(b, document_id: int, data: bytes | None = None, filename: str = "note.txt", **fields):
    page = text(b.get(f"/documents/{document_id}"))
    match = VERSION_ACTION.search(page)
    assert match, "no new-version form on the page"
    form = dict(fields)
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return b.client.post(match.group(1).replace("&amp;", "&"), data=form, content_type="multipart/form-data")


def test_upload_errors_are_shown_next_to_their_fields_with_what_was_typed(browser):
    """R-DOC-1: title, abstract and keywords are required; the page says which is missing."""
    b = browser("clerk")
    r = upload_through_page(b, keywords="", title="没有关键词的文件")
    assert r.status_code == 422
    page = text(r)
    assert 'id="f-keywords-error"' in page and 'aria-invalid="true"' in page
    assert 'value="没有关键词的文件"' in page  # what was typed is kept
    # Above one's own clearance (内部 by default): refused next to the level.
    r = upload_through_page(b, security_level="机密")
    assert r.status_code == 403 and 'id="f-security_level-error"' in text(r)


def test_an_upload_without_the_csrf_token_is_refused_before_any_byte_is_kept(app, browser):
    b = browser("clerk")
    r = b.client.post("/documents/upload", data={"title": "x", "file": (io.BytesIO(b"abc"), "a.txt")},
                      content_type="multipart/form-data")
    assert r.status_code == 403
    blobs = app.config["INKLESS"].data_dir / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()]


def test_versions_with_notes_restore_and_history_through_the_page(browser):
    """R-DOC-5: a second version with a note, a restore, three versions in the history."""
    b = browser("clerk")
    document_id = uploaded_through_page(b, data="第一版内容\n".encode())
    r = add_version_through_page(b, document_id, "第二版内容\n".encode(), change_note="", security_level="内部")
    assert r.status_code == 422 and 'id="f-change_note-error"' in text(r)
    r = add_version_through_page(b, document_id, "第二版内容\n".encode(), change_note="补充第二节",
                                 security_level="内部")
    assert r.status_code == 303
    page = text(b.get(f"/documents/{document_id}"))
    assert "补充第二节" in page
    r = b.post(f"/documents/{document_id}/versions/1/restore", {})
    assert r.status_code == 303
    page = text(b.get(f"/documents/{document_id}"))
    assert "恢复第 1 版" in page
    for n in (1, 2, 3):
        assert f"/api/v1/documents/{document_id}/versions/{n}/content" in page
    assert b.client.get(f"/api/v1/documents/{document_id}/content").data == "第一版内容\n".encode()


def test_read_share_lets_the_colleague_open_but_not_add_a_version(browser):
    """R-DOC-4: shared read-only, the grantee reads and downloads but cannot upload a version."""
    owner, colleague = browser("clerk"), browser("fin_head")
    document_id = uploaded_through_page(owner)
    assert colleague.get(f"/documents/{document_id}").status_code == 404
    r = owner.post(f"/documents/{document_id}/shares", {"grantee_kind": "user", "username": "nobody",
                                                         "permission": "read"})
    assert r.status_code == 422 and 'id="f-username-error"' in text(r)
    r = owner.post(f"/documents/{document_id}/shares", {"grantee_kind": "user", "username": "fin_head",
                                                         "permission": "read"})
    assert r.status_code == 303
    page = text(colleague.get(f"/documents/{document_id}"))
    assert "值班记录" in page and "只读" in page
    assert not VERSION_ACTION.search(page)
    assert colleague.client.get(f"/api/v1/documents/{document_id}/content").status_code == 200
    assert "值班记录" in text(colleague.get("/documents?scope=shared"))
    # Posting a version anyway (a forged form) is refused by the same check as the API.
    token = colleague.csrf
    r = colleague.client.post(f"/documents/{document_id}/versions?csrf_token={token}",
                              data={"change_note": "改", "file": (io.BytesIO(b"x"), "x.txt")},
                              content_type="multipart/form-data")
    assert r.status_code == 403
    # Withdrawn: the colleague no longer finds it.
    share_id = re.search(rf"/documents/{document_id}/shares/(\d+)/revoke", text(owner.get(f"/documents/{document_id}")))
    assert owner.post(f"/documents/{document_id}/shares/{share_id.group(1)}/revoke", {}).status_code == 303
    assert colleague.get(f"/documents/{document_id}").status_code == 404


def test_core_secret_document_refuses_sharing_on_the_page(app, login, browser):
    """R-DOC-4: a 核心机密 document offers no share form, and a forged share is refused with the reason."""
    set_clearance(login, "clerk", "核心机密")
    set_clearance(login, "office_head", "核心机密")
    b = browser("clerk")
    document_id = uploaded_through_page(b, security_level="核心机密")
    page = text(b.get(f"/documents/{document_id}"))
    assert "核心机密" in page and 'name="permission"' not in page
    r = b.post(f"/documents/{document_id}/shares", {"grantee_kind": "user", "username": "office_head",
                                                     "permission": "read"})
    assert r.status_code == 409 and "核心机密" in text(r)


def test_no_clearance_means_not_found_on_the_pages(login, browser):
    """R-SEC-4: above a user's clearance a document is neither listed, found nor opened."""
    set_clearance(login, "clerk", "机密")
    b = browser("clerk")
    document_id = uploaded_through_page(b, security_level="机密", title="机密报告", keywords="报告")
    admin = browser("office_admin")  # administers OFFICE but holds only 内部
    assert "机密报告" not in text(admin.get("/documents"))
    assert "机密报告" not in text(admin.get("/documents?q=报告"))
    assert admin.get(f"/documents/{document_id}").status_code == 404


def test_delete_and_undelete_through_the_page(app, browser):
    b = browser("clerk")
    document_id = uploaded_through_page(b)
    assert b.get(f"/documents/{document_id}").status_code == 200
    link = f'href="/documents/{document_id}"'
    assert b.post(f"/documents/{document_id}/delete", {}).status_code == 303
    assert link not in text(b.get("/documents"))
    assert link in text(b.get("/documents?state=deleted"))
    assert b.post(f"/documents/{document_id}/undelete", {}).status_code == 303
    assert link in text(b.get("/documents"))
    with app.app_context():
        s = app.extensions["inkless.db"]()
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(document_id))).all()
        s.close()
    assert {"document_uploaded", "document_viewed", "document_deleted", "document_undeleted"} <= set(actions)
