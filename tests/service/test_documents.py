"""The document library through the HTTP API: upload with metadata, security levels and
encryption at rest, sharing, versions, search, archiving, deletion and the audit trail
(R-DOC-1 … R-DOC-5, R-SEC-3, R-SEC-4, R-SEC-8)."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from engine import clock
from service import audit_chain
from service.documents.models import Document, DocumentShare
from service.models import AuditEvent
from tests.service.documents_helpers import (
    API,
    docx,
    new_version,
    pdf,
    raw_multipart,
    set_clearance,
    upload,
    uploaded,
)


def _session(app):
    return app.extensions["inkless.db"]()


def _ids(api, path="", **params) -> list[int]:
    r = api.get(f"{API}{path}", query_string=params)
    assert r.status_code == 200, r.get_json()
    return [d["id"] for d in r.get_json()["items"]]


def _share(api, document_id, status=201, **body):
    r = api.post(f"{API}/{document_id}/shares", json=body)
    assert r.status_code == status, r.get_json()
    return r.get_json()


# --- upload (R-DOC-1) --------------------------------------------------------------------------

def test_upload_requires_title_abstract_keywords_and_a_level(login):
    """R-DOC-1: title, abstract and keywords are required and the file is classified."""
    clerk = login("clerk")
    r = upload(clerk, title="", abstract=..., keywords=" , ", security_level="绝密")
    assert r.status_code == 422
    fields = {d["field"] for d in r.get_json()["details"]}
    assert fields == {"title", "abstract", "keywords", "security_level"}

    document = uploaded(clerk, title="2026年工作计划", abstract="办公室年度工作安排", keywords="计划,年度、办公室",
                        business_type="", document_date="2026-01-05")
    assert document["keywords"] == ["计划", "年度", "办公室"]
    assert document["security_level"] == "内部" and document["department"] == "OFFICE"
    assert document["document_date"] == "2026-01-05" and document["owner"] == "clerk"
    assert document["current_version"] == 1 and document["encrypted"] is False


def test_type_is_sniffed_from_the_bytes_and_names_are_sanitised(login):
    """R-DOC-1, R-SEC-4: the content decides the type, not the name; names lose paths and controls."""
    clerk = login("clerk")
    r = upload(clerk, b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", filename="report.pdf")
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "file"
    r = upload(clerk, b"<html><script>alert(1)</script>\x00", filename="page.txt")
    assert r.status_code == 422

    disguised = uploaded(clerk, "纯文本,却自称 PDF".encode(), filename="../../etc/通知\u202egpj.pdf")
    assert disguised["content_type"].startswith("text/plain")
    assert disguised["file_name"] == "通知gpj.pdf.txt"
    real_pdf = uploaded(clerk, pdf("quarterly inspection report"), filename="CON.PDF")
    assert real_pdf["content_type"] == "application/pdf" and real_pdf["file_name"] == "_CON.pdf"
    word = uploaded(clerk, docx(["会议纪要"]), filename="minutes")
    assert word["content_type"].endswith("wordprocessingml.document") and word["file_name"] == "minutes.docx"
    r = clerk.get(f"{API}/{word['id']}/content")
    assert r.headers["Content-Disposition"] == "attachment; filename=\"minutes.docx\"; filename*=UTF-8''minutes.docx"


def test_upload_over_the_size_limit_is_refused(app, login):
    """R-DOC-1: the size limit comes from configuration; nothing of the refused upload stays."""
    app.extensions["inkless.documents"].max_upload_bytes = 1000
    r = upload(login("clerk"), b"x" * 1001)
    assert r.status_code == 413
    assert uploaded(login("clerk"), b"x" * 1000)["size"] == 1000
    blobs = app.config["INKLESS"].data_dir / "blobs"
    assert not any((blobs / "tmp").iterdir())


def test_classifying_above_ones_own_clearance_is_forbidden(login):
    """R-SEC-4: nobody classifies a document above their own clearance (default clearance 内部)."""
    r = upload(login("clerk"), security_level="秘密")
    assert r.status_code == 403
    # System administrators hold no clearance by role either.
    assert upload(login("sysadmin"), security_level="核心机密").status_code == 403
    set_clearance(login, "clerk", "秘密")
    assert uploaded(login("clerk"), security_level="秘密")["encrypted"] is True


# --- sharing (R-DOC-4) -------------------------------------------------------------------------

def test_read_share_lets_the_grantee_read_but_not_write(login):
    """R-DOC-4: shared read-only, the grantee finds, opens and downloads, but cannot add a version."""
    clerk, fin = login("clerk"), login("fin_head")
    document = uploaded(clerk, "财务报销制度全文".encode(), title="报销制度", keywords="报销")
    assert document["id"] not in _ids(fin)
    assert fin.get(f"{API}/{document['id']}").status_code == 404

    share = _share(clerk, document["id"], username="fin_head", permission="read")
    assert share["username"] == "fin_head" and share["permission"] == "read"
    assert document["id"] in _ids(fin)
    assert document["id"] in _ids(fin, shared_with_me="true")
    detail = fin.get(f"{API}/{document['id']}").get_json()
    assert detail["permissions"] == {"read": True, "edit": False, "manage": False}
    assert fin.get(f"{API}/{document['id']}/content").data == "财务报销制度全文".encode()

    r = new_version(fin, document["id"], b"changed", change_note="改一下")
    assert r.status_code == 403
    assert fin.post(f"{API}/{document['id']}/versions/1/restore", json={}).status_code == 403
    assert fin.post(f"{API}/{document['id']}/shares", json={"username": "supervisor", "permission": "read"}).status_code == 403
    assert fin.client.delete(f"{API}/{document['id']}", headers=fin._headers()).status_code == 403

    r = clerk.client.delete(f"{API}/{document['id']}/shares/{share['id']}", headers=clerk._headers())
    assert r.status_code == 204
    assert fin.get(f"{API}/{document['id']}").status_code == 404


def test_edit_share_can_add_a_version(login):
    """R-DOC-4, R-DOC-5: an edit share may add versions (with a change note)."""
    clerk, fin = login("clerk"), login("fin_head")
    document = uploaded(clerk, b"draft 1")
    _share(clerk, document["id"], username="fin_head", permission="edit")
    r = new_version(fin, document["id"], b"draft 2 by finance", change_note="财务处补充预算数字")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["number"] == 2 and r.get_json()["created_by"] == "fin_head"
    assert clerk.get(f"{API}/{document['id']}/content").data == b"draft 2 by finance"


def test_department_share_and_expiry(app, login):
    """R-DOC-4: a department share reaches its members; an expired share reaches nobody."""
    clerk = login("clerk")
    document = uploaded(clerk, b"for finance")
    _share(clerk, document["id"], status=422, department="FIN", permission="read",
           expires_at="2000-01-01T00:00:00+00:00")
    later = (clock.now() + timedelta(days=7)).isoformat()
    _share(clerk, document["id"], department="FIN", permission="read", expires_at=later)
    assert document["id"] in _ids(login("fin_admin"))
    assert document["id"] in _ids(login("fin_head"))
    assert document["id"] not in _ids(login("supervisor"))

    with app.app_context():
        s = _session(app)
        s.execute(update(DocumentShare).values(expires_at=clock.now() - timedelta(seconds=1)))
        s.commit()
        s.close()
    assert document["id"] not in _ids(login("fin_head"))
    assert login("fin_head").get(f"{API}/{document['id']}/content").status_code == 404


def test_department_admin_manages_shares_of_department_documents(login):
    """R-DOC-4, R-ACC-3: the department's administrator manages shares; another department's cannot."""
    document = uploaded(login("clerk"), b"office paper")
    _share(login("office_admin"), document["id"], username="supervisor", permission="read")
    r = login("fin_admin").post(f"{API}/{document['id']}/shares", json={"username": "fin_head", "permission": "read"})
    assert r.status_code == 404


def test_core_secret_document_refuses_any_share(app, login):
    """R-DOC-4: a 核心机密 document can never be shared, whoever asks — refused by the API with a
    clear message and by the database's own constraint."""
    set_clearance(login, "office_head", "核心机密")
    set_clearance(login, "office_admin", "核心机密")
    set_clearance(login, "fin_head", "核心机密")
    head = login("office_head")
    core = uploaded(head, b"core secret text", security_level="核心机密")
    for who, body in (("office_head", {"username": "fin_head", "permission": "read"}),
                      ("office_head", {"department": "OFFICE", "permission": "read"}),
                      ("office_admin", {"username": "fin_head", "permission": "edit"})):
        r = login(who).post(f"{API}/{core['id']}/shares", json=body)
        assert r.status_code == 409, r.get_json()
        assert r.get_json()["code"] == "core_secret_not_shareable"
        assert "核心机密" in r.get_json()["message"]
    assert head.get(f"{API}/{core['id']}/shares").get_json()["items"] == []

    # Raising a shared document to 核心机密 is refused too, until its shares are gone.
    secret = uploaded(head, b"secret text", security_level="秘密")
    share = _share(head, secret["id"], username="fin_head", permission="read")
    r = new_version(head, secret["id"], change_note="升为核心机密", security_level="核心机密")
    assert r.status_code == 409 and "核心机密" in r.get_json()["message"]

    with app.app_context():
        s = _session(app)
        # The database refuses a share row for a core-secret document…
        s.add(DocumentShare(document_id=core["id"], security_level=4, user_id=1, permission="read", created_by=1))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        # …one whose level disagrees with the document's…
        s.add(DocumentShare(document_id=core["id"], security_level=2, user_id=1, permission="read", created_by=1))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        # …and raising a shared document to 核心机密 behind the service's back.
        with pytest.raises(IntegrityError):
            s.execute(update(Document).where(Document.id == secret["id"]).values(security_level=4))
        s.rollback()
        s.close()

    head.client.delete(f"{API}/{secret['id']}/shares/{share['id']}", headers=head._headers())
    r = new_version(head, secret["id"], change_note="升为核心机密", security_level="核心机密")
    assert r.status_code == 201, r.get_json()


# --- versions (R-DOC-5) ------------------------------------------------------------------------

def test_versions_with_notes_restore_and_history(login):
    """R-DOC-5: a second version needs a change note; restoring the first makes a third; history
    lists all three; any version downloads; the metadata diff names what changed."""
    clerk = login("clerk")
    document = uploaded(clerk, "第一版内容".encode(), title="接待规范")
    r = new_version(clerk, document["id"], "第二版内容".encode())
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "change_note"
    r = new_version(clerk, document["id"], "第二版内容".encode(), change_note="补充接待流程", title="接待规范(修订)",
                    keywords="接待,礼仪")
    assert r.status_code == 201 and r.get_json()["number"] == 2

    r = clerk.post(f"{API}/{document['id']}/versions/1/restore", json={"change_note": "恢复原版"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["number"] == 3 and r.get_json()["restored_from"] == 1

    history = clerk.get(f"{API}/{document['id']}/versions").get_json()["items"]
    assert [(v["number"], v["change_note"], v["title"]) for v in history] == [
        (1, "首次上传", "接待规范"), (2, "补充接待流程", "接待规范(修订)"), (3, "恢复原版", "接待规范")]
    assert clerk.get(f"{API}/{document['id']}/versions/1/content").data == "第一版内容".encode()
    assert clerk.get(f"{API}/{document['id']}/versions/2/content").data == "第二版内容".encode()
    assert clerk.get(f"{API}/{document['id']}/content").data == "第一版内容".encode()
    current = clerk.get(f"{API}/{document['id']}").get_json()
    assert current["current_version"] == 3 and current["title"] == "接待规范"

    diff = clerk.get(f"{API}/{document['id']}/versions/2/diff").get_json()
    assert diff["from_version"] == 1 and diff["content_changed"] is True
    assert {c["field"]: (c["from"], c["to"]) for c in diff["changes"]} == {
        "title": ("接待规范", "接待规范(修订)"), "keywords": (["测试"], ["接待", "礼仪"])}
    same = clerk.get(f"{API}/{document['id']}/versions/3/diff", query_string={"against": 1}).get_json()
    assert same["changes"] == [] and same["content_changed"] is False

    # A version may change only metadata: the content stays.
    r = new_version(clerk, document["id"], change_note="更正日期", document_date="2026-02-01")
    assert r.status_code == 201 and r.get_json()["size"] == len("第一版内容".encode())


# --- search (R-DOC-3) --------------------------------------------------------------------------

def test_chinese_search_finds_a_word_inside_a_docx(login):
    """R-DOC-3: full-text search with Chinese segmentation finds 考核 inside a DOCX's text."""
    clerk = login("clerk")
    report = uploaded(clerk, docx(["青海省无纸化平台", "本季度各部门绩效考核工作总结如下。"]), filename="总结.docx",
                      title="第三季度工作总结", abstract="季度总结", keywords="总结")
    uploaded(clerk, "会议室使用须知".encode(), title="会议室管理", abstract="会议室预约", keywords="会议室")
    for query in ("考核", "绩效考核", "考核 总结", "无纸化"):
        assert _ids(clerk, "/search", q=query) == [report["id"]], query
    assert _ids(clerk, "/search", q="预约") != [report["id"]]
    assert _ids(clerk, "/search", q="审计") == []
    # Found only by those who may read it.
    assert _ids(login("fin_head"), "/search", q="考核") == []

    scanned = uploaded(clerk, pdf("Quarterly inspection of archives"), filename="scan.pdf", title="检查记录")
    assert _ids(clerk, "/search", q="inspection") == [scanned["id"]]


def test_search_follows_the_current_version(login):
    """R-DOC-3, R-DOC-5: the index holds the current version's text."""
    clerk = login("clerk")
    document = uploaded(clerk, "旧制度:差旅费标准".encode())
    assert _ids(clerk, "/search", q="差旅费") == [document["id"]]
    new_version(clerk, document["id"], "新制度:培训费标准".encode(), change_note="替换为培训制度")
    assert _ids(clerk, "/search", q="差旅费") == []
    assert _ids(clerk, "/search", q="培训费") == [document["id"]]


# --- mandatory access control and encryption (R-DOC-2, R-SEC-3, R-SEC-4) -----------------------

def test_user_without_clearance_can_neither_find_nor_open_a_confidential_document(app, login):
    """R-DOC-2, R-SEC-4: above their clearance a document does not exist for a user — not in
    lists, not in search (even by title), not by id, not for download — even if shared with
    their department and even for administrators; each attempt is audited."""
    set_clearance(login, "office_head", "机密")
    head = login("office_head")
    secret = uploaded(head, docx(["机密项目预算表"]), filename="预算.docx", title="机密项目预算",
                      abstract="项目预算", keywords="预算", security_level="机密")
    _share(head, secret["id"], department="OFFICE", permission="read")
    for who in ("clerk", "office_admin", "sysadmin"):
        api = login(who)
        assert secret["id"] not in _ids(api), who
        assert _ids(api, "/search", q="机密项目预算") == [], who
        assert _ids(api, "/search", q="预算") == [], who
        for path in ("", "/content", "/versions", "/versions/1/content", "/shares"):
            assert api.get(f"{API}/{secret['id']}{path}").status_code == 404, (who, path)
    # With the clearance, the department share works.
    set_clearance(login, "clerk", "机密")
    assert login("clerk").get(f"{API}/{secret['id']}/content").status_code == 200
    # The content of a confidential document is not indexed, only its metadata.
    # Its metadata is searchable for those cleared; its content is not indexed at all.
    assert _ids(head, "/search", q="预算") == [secret["id"]]
    assert _ids(head, "/search", q="预算表") == []

    with app.app_context():
        s = _session(app)
        denied = s.scalars(select(AuditEvent).where(AuditEvent.action == "document_access_denied")).all()
        s.close()
    assert {(e.actor_id is not None, e.object_id, e.detail["reason"]) for e in denied} == {
        (True, str(secret["id"]), "above clearance")}
    assert len(denied) >= 15


def _plaintext_blocks(plain: bytes) -> set[bytes]:
    # Any 32-byte window of the plaintext contains one of its 16-byte blocks at a multiple of 16.
    return {plain[i:i + 16] for i in range(0, len(plain) - 15, 16)}


def _contains_any(blob: bytes, blocks: set[bytes]) -> bool:
    return any(blob[i:i + 16] in blocks for i in range(len(blob) - 15))


@pytest.mark.parametrize("cipher", ["AES-256-GCM", "SM4-GCM"])
def test_confidential_bytes_on_disk_contain_no_window_of_the_plaintext(app, login, cipher):
    """R-DOC-2, R-SEC-3: a 秘密 document is encrypted at rest (AES-256-GCM or SM4-GCM by
    configuration) in chunks; no 32-byte window of its plaintext is anywhere in the blob store —
    also when the level arrives after the file in the upload."""
    settings = app.extensions["inkless.documents"]
    settings.cipher = cipher
    settings.chunk_size = 64 * 1024
    set_clearance(login, "clerk", "秘密")
    clerk = login("clerk")
    plain = "".join(f"第{i}条 涉密内容:青海无纸化平台秘密文件正文 {i * 7919 % 104729}\n" for i in range(6000)).encode()
    assert len(plain) > 5 * settings.chunk_size
    later = "".join(f"另一份:密级写在文件之后的第{i}段,内容 {i * 104729 % 7919}\n" for i in range(3000)).encode()
    document = uploaded(clerk, plain, filename="秘密.txt", security_level="秘密")
    assert document["encrypted"] is True

    body, ctype = raw_multipart([("title", None, "后到的密级".encode()), ("abstract", None, "先传文件".encode()),
                                 ("keywords", None, "测试".encode()), ("file", "late.txt", later),
                                 ("security_level", None, "秘密".encode())])
    r = clerk.client.post(API, data=body, content_type=ctype, headers=clerk._headers())
    assert r.status_code == 201 and r.get_json()["encrypted"] is True, r.get_json()
    late = r.get_json()

    history = clerk.get(f"{API}/{document['id']}/versions").get_json()["items"]
    assert history[0]["algorithm"] == cipher
    assert clerk.get(f"{API}/{document['id']}/content").data == plain
    assert clerk.get(f"{API}/{late['id']}/content").data == later

    blobs = app.config["INKLESS"].data_dir / "blobs"
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert files and all("plain" not in p.parts for p in files)
    blocks = _plaintext_blocks(plain) | _plaintext_blocks(later)
    for path in files:
        assert not _contains_any(path.read_bytes(), blocks), path
    names = {p.name for p in files}
    assert hashlib.sha256(plain).hexdigest() not in names


def test_level_after_the_file_of_an_internal_document_stores_it_plain_once(app, login):
    """R-DOC-2, R-DOC-3: plain content is content-addressed (stored once); an upload that names
    its level after the file is encrypted on arrival and moved to plain storage once known."""
    clerk = login("clerk")
    data = "相同的内容只存一份".encode()
    first = uploaded(clerk, data)
    body, ctype = raw_multipart([("title", None, "副本".encode()), ("abstract", None, "副本".encode()),
                                 ("keywords", None, "副本".encode()), ("file", "copy.txt", data),
                                 ("security_level", None, "内部".encode())])
    r = clerk.client.post(API, data=body, content_type=ctype, headers=clerk._headers())
    assert r.status_code == 201 and r.get_json()["encrypted"] is False
    assert r.get_json()["id"] != first["id"]
    blobs = app.config["INKLESS"].data_dir / "blobs"
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [hashlib.sha256(data).hexdigest()]


def test_raising_a_document_to_secret_encrypts_its_earlier_versions(app, login):
    """R-DOC-2: once 秘密, no version of the document stays in plain on disk."""
    set_clearance(login, "clerk", "秘密")
    clerk = login("clerk")
    plain = ("内部阶段的草稿,之后定为秘密。" * 50).encode()
    document = uploaded(clerk, plain)
    r = new_version(clerk, document["id"], change_note="定密为秘密", security_level="秘密")
    assert r.status_code == 201, r.get_json()
    history = clerk.get(f"{API}/{document['id']}/versions").get_json()["items"]
    assert [v["encrypted"] for v in history] == [True, True]
    blobs = app.config["INKLESS"].data_dir / "blobs"
    blocks = _plaintext_blocks(plain)
    assert all(not _contains_any(p.read_bytes(), blocks) for p in blobs.rglob("*") if p.is_file())
    assert clerk.get(f"{API}/{document['id']}/versions/1/content").data == plain
    assert _ids(clerk, "/search", q="草稿") == []


def test_master_key_rotation_rewraps_data_keys_without_reencrypting(app, login):
    """R-SEC-3: rotation re-wraps every data key under a new master key; blobs stay as they are."""
    set_clearance(login, "clerk", "秘密")
    clerk = login("clerk")
    document = uploaded(clerk, b"secret payload " * 100, security_level="秘密")
    blobs = app.config["INKLESS"].data_dir / "blobs"
    before = {p: p.read_bytes() for p in blobs.rglob("*") if p.is_file()}
    keys = app.config["INKLESS"].data_dir / "keys"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in keys.glob("*.key"))

    assert login("office_admin").post(f"{API}/keys/rotate").status_code == 403
    r = login("sysadmin").post(f"{API}/keys/rotate")
    assert r.status_code == 200 and r.get_json()["rewrapped"] == 1
    assert (keys / "CURRENT").read_text() == r.get_json()["key_id"]
    assert {p: p.read_bytes() for p in blobs.rglob("*") if p.is_file()} == before
    app.extensions.pop("inkless.documents.keys")  # as after a restart
    assert clerk.get(f"{API}/{document['id']}/content").data == b"secret payload " * 100


# --- classification, archiving, deletion (R-DOC-3) ---------------------------------------------

def test_browse_by_business_type_department_and_date(login):
    """R-DOC-3: a managed business-type tree; browse a branch, a department, a date range."""
    platform = login("platform")
    assert login("clerk").post(f"{API}/business-types", json={"code": "ADMIN", "name": "行政"}).status_code == 403
    for body in ({"code": "ADMIN", "name": "行政"}, {"code": "ADMIN.NOTICE", "name": "通知公告", "parent": "ADMIN"},
                 {"code": "FINANCE", "name": "财务"}):
        assert platform.post(f"{API}/business-types", json=body).status_code == 201
    r = platform.client.patch(f"{API}/business-types/ADMIN", json={"parent": "ADMIN.NOTICE"}, headers=platform._headers())
    assert r.status_code == 422
    tree = {t["code"]: t["parent"] for t in login("clerk").get(f"{API}/business-types").get_json()["items"]}
    assert tree == {"ADMIN": None, "ADMIN.NOTICE": "ADMIN", "FINANCE": None}

    clerk, fin = login("clerk"), login("fin_head")
    notice = uploaded(clerk, b"notice", business_type="ADMIN.NOTICE", document_date="2026-03-01")
    rule = uploaded(clerk, b"rule", business_type="ADMIN", document_date="2025-06-01")
    budget = uploaded(fin, b"budget", business_type="FINANCE", document_date="2026-03-15")
    _share(fin, budget["id"], department="OFFICE", permission="read")
    assert sorted(_ids(clerk, business_type="ADMIN")) == sorted([notice["id"], rule["id"]])
    assert _ids(clerk, business_type="ADMIN.NOTICE") == [notice["id"]]
    assert _ids(clerk, department="FIN") == [budget["id"]]
    assert sorted(_ids(clerk, date_from="2026-01-01", date_to="2026-12-31")) == sorted([notice["id"], budget["id"]])
    assert sorted(_ids(clerk, mine="true")) == sorted([notice["id"], rule["id"]])
    assert upload(clerk, business_type="NOPE").status_code == 422
    assert upload(clerk, department="FIN").status_code == 422


def test_archived_documents_are_read_only_and_still_searchable(login):
    """R-DOC-3: documents older than the policy age are archived: read-only, still found."""
    clerk = login("clerk")
    old = uploaded(clerk, "二〇二〇年档案整理办法".encode(), document_date="2020-01-01", title="档案整理办法")
    recent = uploaded(clerk, b"recent", document_date=clock.now().date().isoformat())
    assert clerk.post(f"{API}/archive", json={"older_than_days": 365}).status_code == 403
    r = login("platform").post(f"{API}/archive", json={"older_than_days": 365})
    assert r.status_code == 200 and r.get_json()["ids"] == [old["id"]]
    assert clerk.get(f"{API}/{old['id']}").get_json()["state"] == "archived"
    assert new_version(clerk, old["id"], b"new", change_note="x").status_code == 409
    assert clerk.post(f"{API}/{old['id']}/versions/1/restore", json={}).status_code == 409
    assert _ids(clerk, "/search", q="档案") == [old["id"]]
    assert _ids(clerk, state="archived") == [old["id"]]
    assert clerk.get(f"{API}/{recent['id']}").get_json()["state"] == "active"


def test_soft_delete_keeps_the_document_restorable_until_retention_ends(app, login):
    """R-DOC-3, R-SEC-8: deletion is soft; the trash keeps it for the retention period, then a
    purge removes it and its blobs; the audit trail stays."""
    clerk = login("clerk")
    document = uploaded(clerk, "即将删除的文件".encode())
    _share(clerk, document["id"], username="fin_head", permission="read")
    r = clerk.client.delete(f"{API}/{document['id']}", headers=clerk._headers())
    assert r.status_code == 200 and r.get_json()["state"] == "deleted" and r.get_json()["purge_after"]
    assert document["id"] not in _ids(clerk)
    assert _ids(clerk, "/search", q="删除") == []
    assert _ids(clerk, state="deleted") == [document["id"]]
    assert login("fin_head").get(f"{API}/{document['id']}").status_code == 404
    assert clerk.post(f"{API}/{document['id']}/undelete").status_code == 200
    assert document["id"] in _ids(login("fin_head"))

    clerk.client.delete(f"{API}/{document['id']}", headers=clerk._headers())
    assert login("sysadmin").post(f"{API}/purge").get_json()["count"] == 0
    with app.app_context():
        s = _session(app)
        s.execute(update(Document).values(purge_after=clock.now() - timedelta(days=1)))
        s.commit()
        s.close()
    assert clerk.post(f"{API}/purge").status_code == 403
    assert login("sysadmin").post(f"{API}/purge").get_json()["ids"] == [document["id"]]
    assert clerk.get(f"{API}/{document['id']}").status_code == 404
    blobs = app.config["INKLESS"].data_dir / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()]


# --- clearances and the audit trail (R-SEC-4, R-SEC-8) -----------------------------------------

def test_only_system_administrators_set_clearances_and_never_their_own(login):
    """R-SEC-4, R-ACC-3: clearances are set by system administrators, audited, never for oneself."""
    assert login("office_admin").client.put(f"{API}/clearances/clerk", json={"level": "秘密"},
                                            headers=login("office_admin")._headers()).status_code == 403
    sysadmin = login("sysadmin")
    r = sysadmin.client.put(f"{API}/clearances/sysadmin", json={"level": "核心机密"}, headers=sysadmin._headers())
    assert r.status_code == 403
    set_clearance(login, "clerk", "机密")
    levels = {c["username"]: c["level"] for c in sysadmin.get(f"{API}/clearances").get_json()["items"]}
    assert levels["clerk"] == "机密" and levels["sysadmin"] == "内部" and levels["office_head"] == "内部"


def test_every_access_is_audited_with_user_document_version_and_address(app, login):
    """R-SEC-4, R-SEC-8: view, download, history, share, version, restore, delete — each an
    audit event naming the user, the document, the version and the client address; the chain
    verifies."""
    clerk = login("clerk")
    document = uploaded(clerk, b"audited")
    did = document["id"]
    clerk.get(f"{API}/{did}")
    clerk.get(f"{API}/{did}/content")
    share = _share(clerk, did, username="fin_head", permission="read")
    login("fin_head").get(f"{API}/{did}/versions/1/content")
    new_version(clerk, did, b"audited twice", change_note="第二版")
    clerk.get(f"{API}/{did}/versions")
    clerk.get(f"{API}/{did}/versions/2/diff")
    clerk.post(f"{API}/{did}/versions/1/restore", json={})
    clerk.client.delete(f"{API}/{did}/shares/{share['id']}", headers=clerk._headers())
    clerk.get(f"{API}/search", query_string={"q": "audited"})
    clerk.client.delete(f"{API}/{did}", headers=clerk._headers())
    with app.app_context():
        s = _session(app)
        events = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "document",
                                                    AuditEvent.object_id == str(did)).order_by(AuditEvent.id)).all()
        users = dict(s.execute(text("SELECT id, username FROM users")).all())
        searched = s.scalar(select(AuditEvent).where(AuditEvent.action == "documents_searched"))
        assert audit_chain.verify_platform(app, s).ok
        s.close()
    trail = [(e.action, users[e.actor_id], e.detail.get("version")) for e in events]
    assert trail == [
        ("document_uploaded", "clerk", 1), ("document_viewed", "clerk", 1), ("document_downloaded", "clerk", 1),
        ("document_shared", "clerk", 1), ("document_downloaded", "fin_head", 1),
        ("document_version_added", "clerk", 2), ("document_history_viewed", "clerk", 2),
        ("document_versions_compared", "clerk", 2), ("document_restored", "clerk", 3),
        ("document_unshared", "clerk", 3), ("document_deleted", "clerk", 3)]
    assert all(e.client_addr == "127.0.0.1" for e in events)
    assert searched.detail == {"q": "audited", "documents": [did]} and searched.client_addr == "127.0.0.1"
