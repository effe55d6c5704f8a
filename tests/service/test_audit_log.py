"""Auditors read the audit log (R-SEC-4, R-SEC-8, issue 15): the API and the page with their filters,
CSV/XLSX exports, every read of the log audited, and reads of instances, tasks, users and documents
logged."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.service.documents_helpers import API as DOCUMENTS
from tests.service.documents_helpers import uploaded
from tests.service.test_pages import Browser, browser, text  # noqa: F401  (the browser fixture)

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def auditor(app, org):
    """An auditor (审计员) of the head office."""
    from service import org as org_module

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "auditor", PASSWORD, "HQ", groups=["auditor"], full_name="审计员 吴")
        s.commit()
        s.close()
    return "auditor"


def _events(app, **where):
    from service.models import AuditEvent

    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            query = select(AuditEvent).order_by(AuditEvent.id)
            for name, value in where.items():
                query = query.where(getattr(AuditEvent, name) == value)
            return s.scalars(query).all()
        finally:
            s.close()


def _user_id(app, username):
    from service.models import User

    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return s.scalar(select(User.id).where(User.username == username))
        finally:
            s.close()


def test_an_auditor_finds_a_persons_sign_ins_and_document_reads_in_the_page_and_exports_them(app, client, login,
                                                                                             auditor):
    """R-SEC-4: the auditor filters the log page by person, sees the sign-ins (one of them failed) and
    the document reads, and exports exactly those rows as CSV and XLSX; each read is audited."""
    client.post("/api/v1/auth/token", json={"username": "clerk", "password": "wrong password"})
    clerk = login("clerk")
    document = uploaded(clerk, title="年度预算说明")
    assert clerk.get(f"{DOCUMENTS}/{document['id']}").status_code == 200
    login("fin_head")  # someone else's sign-in, which the filter leaves out

    page = Browser(app)
    page.sign_in(auditor)
    html = text(page.get("/audit", query_string={"person": "clerk", "action": "login"}))
    assert "办公室" in html and "登录" in html and "fin_head" not in html
    html = text(page.get("/audit", query_string={"person": "clerk", "action": "document_viewed"}))
    assert "查看文件" in html and f"文件 {document['id']}" in html
    failed = text(page.get("/audit", query_string={"action": "login_failed", "q": "password"}))
    assert "登录失败" in failed and "clerk" in failed

    both = {"person": "clerk", "action": "login,document_viewed"}
    r = page.get("/audit/export", query_string={**both, "format": "csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0][:3] == ["序号", "时间", "用户名"]
    assert sorted(row[6] for row in table[1:]) == ["document_viewed", "login"]
    assert {row[2] for row in table[1:]} == {"clerk"}
    r = page.client.get("/audit/export", query_string={**both, "format": "xlsx"})
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(r.get_data())).active
    assert sorted(row[6] for row in sheet.iter_rows(min_row=2, values_only=True)) == ["document_viewed", "login"]

    reads = _events(app, actor_id=_user_id(app, auditor))
    assert [e.action for e in reads if e.action.startswith("audit_log")] == [
        "audit_log_read", "audit_log_read", "audit_log_read", "audit_log_exported", "audit_log_exported"]
    assert reads[-1].detail["filters"] == {"person": "clerk", "action": "login,document_viewed"}
    assert reads[-1].detail["rows"] == 2 and reads[-1].detail["format"] == "xlsx"


def test_the_api_filters_by_person_object_department_time_address_and_detail(app, client, login, auditor):
    """R-SEC-4: each filter of the API narrows the rows; bad filters are a 422 naming the field."""
    clerk = login("clerk")
    instance = login("office_admin").post("/api/v1/process-instances",
                                          json={"process_key": "account_application"}).get_json()
    api = login(auditor)
    everything = api.get(EVENTS, query_string={"limit": 500}).get_json()
    assert everything["total"] >= 3
    logins = api.get(EVENTS, query_string={"action": "login", "department": "OFFICE"}).get_json()["items"]
    assert {row["username"] for row in logins} == {"clerk", "office_admin"}
    assert all(row["department_name"] == "办公室" and row["action_name"] == "登录" for row in logins)
    mine = api.get(EVENTS, query_string={"object_type": "user", "object_id": str(_user_id(app, "clerk")),
                                         "action": "login"}).get_json()
    assert mine["total"] == 1 and mine["items"][0]["username"] == "clerk"
    address = logins[0]["address"]
    assert api.get(EVENTS, query_string={"address": address, "action": "login"}).get_json()["total"] == 3
    assert api.get(EVENTS, query_string={"address": "10.9.9.9"}).get_json()["total"] == 0
    from engine import clock
    from service.localtime import PLATFORM_TZ

    today = clock.now().astimezone(PLATFORM_TZ).date()
    assert api.get(EVENTS, query_string={"since": today.isoformat(), "action": "login"}).get_json()["total"] == 3
    assert api.get(EVENTS, query_string={"until": "2020-01-01", "action": "login"}).get_json()["total"] == 0
    started = api.get(EVENTS, query_string={"object_type": "process_instance",
                                            "object_id": str(instance["id"])}).get_json()
    assert started["total"] >= 1
    # Full text on the detail, in Chinese too (the JSON may hold it \\u-escaped).
    with app.test_request_context():
        from service import audit

        s = app.extensions["inkless.db"]()
        audit.record(s, "note", "user", None, detail={"reason": "紧急查阅预算文件"})
        s.commit()
        s.close()
    assert api.get(EVENTS, query_string={"q": "预算"}).get_json()["total"] == 1
    assert clerk.get(EVENTS).status_code == 403

    r = api.get(EVENTS, query_string={"since": "yesterday"})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "since"
    r = api.get(EVENTS, query_string={"since": "2026-12-05", "until": "2026-12-01"})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "until"
    assert api.get(EVENTS, query_string={"limit": 501}).status_code == 422


def test_non_auditors_are_refused_the_log_and_its_exports(login, browser, auditor):  # noqa: F811
    """R-SEC-4, R-SEC-7: not even a system administrator reads the log; the page and export say 403."""
    for username in ("clerk", "office_admin", "sysadmin", "supervisor"):
        assert login(username).get(EVENTS).status_code == 403
        assert login(username).get(f"{EVENTS}/export").status_code == 403
        page = browser(username)
        assert page.get("/audit").status_code == 403
        assert page.get("/audit/export").status_code == 403
        assert 'href="/audit"' not in text(page.get("/"))  # supervisors have the access review only
    assert 'href="/audit"' in text(browser(auditor).get("/"))


def test_reads_of_instances_tasks_and_user_records_are_logged_one_row_per_request(app, login, browser):  # noqa: F811
    """R-SEC-4: every API and page read of an instance, a task or user records leaves one row."""
    admin = login("office_admin")
    instance = admin.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    task = admin.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    actor = _user_id(app, "office_admin")
    before = len(_events(app, action="records_read"))
    assert admin.get(f"/api/v1/process-instances/{instance['id']}").status_code == 200
    assert admin.get(f"/api/v1/tasks/{task['id']}").status_code == 200
    assert admin.get("/api/v1/users").status_code == 200
    page = browser("office_admin")
    assert page.get(f"/requests/{instance['id']}").status_code == 200
    assert page.get(f"/tasks/{task['id']}").status_code == 200
    reads = _events(app, action="records_read")[before:]
    assert [(e.object_type, e.object_id) for e in reads[:2]] == [("process_instance", str(instance["id"])),
                                                                ("task", task["id"])]
    assert all(e.actor_id == actor for e in reads)
    users = reads[2]
    assert users.object_type == "user" and len(users.detail["objects"]["user"]) >= 2
    assert {(e.object_type, e.detail["path"]) for e in reads[3:]} == {
        ("process_instance", f"/requests/{instance['id']}"), ("task", f"/tasks/{task['id']}")}
    # A refused read is not a read; a read that fails leaves no row.
    assert login("clerk").get(f"/api/v1/process-instances/{instance['id']}").status_code == 404
    assert len(_events(app, action="records_read")) == before + 5


def test_read_logging_can_be_turned_off(app, login):
    """The bench's baseline (bench/read_audit.py): Config.read_audit off, no row."""
    admin = login("office_admin")
    instance = admin.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    app.config["INKLESS"].read_audit = False
    before = len(_events(app, action="records_read"))
    assert admin.get(f"/api/v1/process-instances/{instance['id']}").status_code == 200
    assert len(_events(app, action="records_read")) == before


def test_exported_text_that_a_spreadsheet_would_run_is_defused(app, login, auditor):
    """A detail or address starting with = is written with a leading quote (service/exports.py)."""
    with app.test_request_context():
        from service import audit

        s = app.extensions["inkless.db"]()
        audit.record(s, "note", "=HYPERLINK(\"http://evil\")", None, detail={"x": 1})
        s.commit()
        s.close()
    r = login(auditor).get(f"{EVENTS}/export", query_string={"action": "note"})
    row = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))[1]
    assert row[7].startswith("'=")
