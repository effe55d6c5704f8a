"""Inspection by the supervision group (R-SUP-1): read-only views of accounts, departments,
document metadata and process execution across departments, each read in the audit log; document
content stays behind clearance (R-DOC-4, R-SEC-4)."""
from __future__ import annotations

from sqlalchemy import select

from service.models import AuditEvent
from tests.service.documents_helpers import set_clearance, uploaded
from tests.service.test_pages import Browser


def _reads(app, view: str) -> list[AuditEvent]:
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return [e for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "inspection_read")
                                         .order_by(AuditEvent.id)) if e.detail.get("view") == view]
        finally:
            s.close()


def test_supervisor_reads_another_departments_accounts_and_it_is_audited(app, login):
    """R-SUP-1: the supervisor (HQ) lists OFFICE's accounts with role, groups and last sign-in."""
    login("clerk")  # signs in: a last sign-in to show
    supervisor = login("supervisor")
    r = supervisor.get("/api/v1/inspection/accounts", query_string={"department": "OFFICE"})
    assert r.status_code == 200, r.get_json()
    accounts = {a["username"]: a for a in r.get_json()["items"]}
    assert set(accounts) == {"office_head", "office_admin", "clerk"}
    assert accounts["office_admin"]["role"] == "dept_admin"
    assert accounts["office_admin"]["groups"] == ["designer"]
    assert accounts["office_admin"]["group_names"] == ["流程设计"]
    assert accounts["clerk"]["last_sign_in"] is not None
    assert accounts["office_head"]["last_sign_in"] is None
    assert not any(a["dormant"] for a in accounts.values())
    (event,) = _reads(app, "accounts")
    assert event.actor_id is not None and event.detail["department"] == "OFFICE" and event.detail["count"] == 3


def test_dormant_accounts_are_those_not_signed_in_for_90_days(app, login, frozen):
    """R-SUP-1: an enabled account neither created nor signed in to within 90 days is dormant."""
    login("clerk")
    frozen.advance(days=91)
    login("fin_head")
    r = login("supervisor").get("/api/v1/inspection/accounts", query_string={"dormant": "true"})
    assert r.status_code == 200, r.get_json()
    dormant = {a["username"] for a in r.get_json()["items"]}
    assert "clerk" in dormant and "office_head" in dormant
    assert "fin_head" not in dormant and "supervisor" not in dormant
    assert r.get_json()["dormant_after_days"] == 90


def test_departments_overview(app, login):
    """R-SUP-1: departments with their accounts and documents, for the supervisor."""
    uploaded(login("clerk"))
    r = login("supervisor").get("/api/v1/inspection/departments")
    assert r.status_code == 200, r.get_json()
    rows = {d["code"]: d for d in r.get_json()["items"]}
    assert rows["OFFICE"]["accounts"] == 3 and rows["OFFICE"]["documents"] == 1
    assert rows["OFFICE"]["head"] == "office_head" or rows["OFFICE"]["head"]
    assert rows["FIN"]["documents"] == 0
    assert len(_reads(app, "departments")) == 1


def test_supervisor_reads_document_metadata_but_not_secret_content(app, login):
    """R-SUP-1, R-DOC-4: another department's document metadata (200, audited); a 秘密 document's
    classification is listed, its title withheld, and its content is not found without clearance."""
    internal = uploaded(login("clerk"), title="办公室内部通知")
    set_clearance(login, "office_head", "秘密")
    secret = uploaded(login("office_head"), b"secret text", title="涉密工作安排", security_level="秘密")
    supervisor = login("supervisor")

    r = supervisor.get("/api/v1/inspection/documents", query_string={"department": "OFFICE"})
    assert r.status_code == 200, r.get_json()
    rows = {d["id"]: d for d in r.get_json()["items"]}
    assert rows[internal["id"]]["title"] == "办公室内部通知" and rows[internal["id"]]["security_level"] == "内部"
    assert rows[secret["id"]]["security_level"] == "秘密"
    assert rows[secret["id"]]["withheld"] is True and rows[secret["id"]]["title"] is None
    assert rows[secret["id"]]["department"] == "OFFICE" and rows[secret["id"]]["state"] == "active"

    one = supervisor.get(f"/api/v1/inspection/documents/{internal['id']}")
    assert one.status_code == 200 and one.get_json()["owner"]
    assert supervisor.get(f"/api/v1/documents/{secret['id']}/content").status_code in (403, 404)
    assert supervisor.get(f"/api/v1/documents/{secret['id']}").status_code in (403, 404)
    assert supervisor.get("/api/v1/inspection/documents", query_string={"level": "绝密"}).status_code == 422

    assert len(_reads(app, "documents")) == 1
    (read,) = _reads(app, "document")
    assert read.object_type == "document" and read.object_id == str(internal["id"])


def test_process_execution_per_department(app, login):
    """R-SUP-1: instances per department and process, for the supervisor."""
    login("office_admin").post("/api/v1/process-instances", json={"process_key": "account_application"})
    r = login("supervisor").get("/api/v1/inspection/processes")
    assert r.status_code == 200, r.get_json()
    (row,) = [p for p in r.get_json()["items"] if p["department"] == "OFFICE"]
    assert row["process_key"] == "account_application" and row["started"] == 1 and row["running"] == 1
    assert len(_reads(app, "processes")) == 1


def test_who_may_inspect(app, login):
    """R-SUP-1, R-ACC-3: an ordinary user may not; a department administrator sees only their department."""
    assert login("clerk").get("/api/v1/inspection/accounts").status_code == 403
    fin = login("fin_admin").get("/api/v1/inspection/accounts").get_json()["items"]
    assert {a["department"] for a in fin} == {"FIN"}
    assert login("fin_admin").get("/api/v1/inspection/accounts", query_string={"department": "OFFICE"}).status_code == 404
    assert login("supervisor").get("/api/v1/inspection/accounts",
                                   query_string={"department": "NOPE"}).status_code == 422


def test_inspection_pages(app, login):
    """R-SUP-1: the pages show the same, in Chinese, and the page views are audited."""
    uploaded(login("clerk"), title="办公室内部通知")
    page = Browser(app)
    page.sign_in("supervisor")
    for path, text in (("/inspect", "办公室"), ("/inspect/accounts?department=OFFICE", "clerk"),
                       ("/inspect/documents", "办公室内部通知"), ("/inspect/processes", "")):
        r = page.get(path)
        assert r.status_code == 200, path
        assert text in r.get_data(as_text=True)
    assert page.get("/inspect/accounts?department=NOPE").status_code == 422
    assert len(_reads(app, "accounts")) == 1  # the refused filter read nothing
