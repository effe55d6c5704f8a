"""The anomaly review of the audit log (R-SEC-4, issue 15): rules over the log, run nightly by the job
table and on demand, findings with their evidence that an auditor dismisses or turns into an
issue_rectification instance, and the monthly access review for supervisors."""
from __future__ import annotations

import csv
import io
from datetime import time

from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.service.documents_helpers import set_clearance, uploaded
from tests.service.test_audit_log import _events, _user_id, auditor  # noqa: F401  (the auditor fixture)
from tests.service.test_pages import Browser, browser, text  # noqa: F401  (the browser fixture)

FINDINGS = "/api/v1/audit/findings"
REVIEW = "/api/v1/audit/review"


def _fail(client, username: str, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        r = client.post("/api/v1/auth/token", json={"username": username, "password": "not the password"},
                        environ_base={"REMOTE_ADDR": address})
        assert r.status_code == 401


def _findings(api, **params) -> list[dict]:
    r = api.get(FINDINGS, query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_a_burst_of_failed_sign_ins_becomes_a_finding_then_a_rectification_instance(app, client, login,
                                                                                     auditor):  # noqa: F811
    """R-SEC-4: six failed sign-ins to clerk's account make one finding whose evidence is exactly those
    rows; the auditor turns it into an issue_rectification instance for clerk's department, whose
    administrator gets the rectification task; the decision is audited."""
    _fail(client, "clerk", 6)
    api = login(auditor)
    r = api.post(REVIEW, json={})
    assert r.status_code == 200, r.get_json()
    found = [f for f in r.get_json()["found"] if f["rule"] == "failed_logins_account"]
    assert len(found) == 1 and found[0]["facts"]["count"] == 6
    assert api.post(REVIEW, json={}).get_json()["found"] == []  # a second review finds nothing new

    detail = api.get(f"{FINDINGS}/{found[0]['id']}").get_json()
    failures = [e.id for e in _events(app, action="login_failed")]
    assert [e["id"] for e in detail["evidence"]] == failures
    assert detail["username"] == "clerk" and detail["rule_name"] == "同一账号连续登录失败"
    assert detail["status"] == "open" and "6 次" in detail["description"]

    r = api.post(f"{FINDINGS}/{found[0]['id']}/rectify", json={"severity": "high", "note": "请核实是否遭暴力破解"})
    assert r.status_code == 200, r.get_json()
    decided = r.get_json()
    assert decided["status"] == "rectifying" and decided["instance_id"]
    instance = login("office_admin").get(f"/api/v1/process-instances/{decided['instance_id']}")
    assert instance.status_code == 200, instance.get_json()
    body = instance.get_json()
    assert body["process_key"] == "issue_rectification" and body["state"] == "running"
    assert body["business_key"] == f"audit-finding-{found[0]['id']}"
    tasks = login("office_admin").get("/api/v1/tasks", query_string={"instance_id": decided["instance_id"]}).get_json()
    task = login("office_admin").get(f"/api/v1/tasks/{tasks['items'][0]['id']}").get_json()
    assert task["element_id"] == "rectify"
    assert task["data"]["department"] == "OFFICE" and task["data"]["category"] == "security"
    assert task["data"]["severity"] == "high" and "请核实是否遭暴力破解" in task["data"]["problem"]
    assert api.post(f"{FINDINGS}/{found[0]['id']}/dismiss", json={"reason": "晚了"}).status_code == 409
    rows = _events(app, action="audit_finding_rectification")
    assert rows[0].detail["instance"] == decided["instance_id"] and rows[0].actor_id == _user_id(app, auditor)


def test_a_burst_from_one_address_over_several_accounts_is_a_finding(client, login, auditor):  # noqa: F811
    """R-SEC-4: ten failures from one address, spread over accounts, make a per-address finding."""
    for username in ("clerk", "fin_head", "nobody", "office_head", "fin_admin"):
        _fail(client, username, 2, address="10.7.7.7")
    api = login(auditor)
    api.post(REVIEW, json={})
    found = _findings(api, rule="failed_logins_address")
    assert len(found) == 1 and found[0]["address"] == "10.7.7.7" and found[0]["facts"]["count"] == 10
    assert "nobody" in found[0]["facts"]["usernames"]
    assert _findings(api, rule="failed_logins_account") == []  # two per account stay below the threshold


def test_an_auditor_dismisses_a_finding_with_a_reason(app, client, login, auditor):  # noqa: F811
    """R-SEC-4: a dismissal needs a reason (422 naming the field), is final (409) and is audited."""
    _fail(client, "clerk", 5)
    api = login(auditor)
    # Only the burst: at night (the suite may run its clock at 23:59) the sign-ins are also unusual-hour ones.
    (finding,) = [f for f in api.post(REVIEW, json={}).get_json()["found"] if f["rule"] == "failed_logins_account"]
    r = api.post(f"{FINDINGS}/{finding['id']}/dismiss", json={"reason": "  "})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "reason"
    r = api.post(f"{FINDINGS}/{finding['id']}/dismiss", json={"reason": "本人忘记密码,已电话核实"})
    assert r.status_code == 200 and r.get_json()["status"] == "dismissed"
    assert r.get_json()["reason"] == "本人忘记密码,已电话核实"
    assert api.post(f"{FINDINGS}/{finding['id']}/dismiss", json={"reason": "再次"}).status_code == 409
    assert [f for f in _findings(api, status="open") if f["id"] == finding["id"]] == []
    assert [f["id"] for f in _findings(api, status="dismissed")] == [finding["id"]]
    assert _events(app, action="audit_finding_dismissed")[0].detail["reason"] == "本人忘记密码,已电话核实"
    assert api.get(FINDINGS, query_string={"status": "closed"}).status_code == 422
    assert api.get(f"{FINDINGS}/999999").status_code == 404


def test_non_auditors_get_403_on_findings_review_and_decisions(client, login, browser, auditor):  # noqa: F811
    """R-SEC-4, R-SEC-7: only auditors see findings, run the review or decide; supervisors get the
    monthly access review and nothing more."""
    _fail(client, "nobody", 5)
    (finding,) = [f for f in login(auditor).post(REVIEW, json={}).get_json()["found"]
                  if f["rule"] in ("failed_logins_account", "failed_logins_address")]
    for username in ("clerk", "office_admin", "sysadmin", "supervisor"):
        api = login(username)
        assert api.get(FINDINGS).status_code == 403
        assert api.get(f"{FINDINGS}/{finding['id']}").status_code == 403
        assert api.post(REVIEW, json={}).status_code == 403
        assert api.post(f"{FINDINGS}/{finding['id']}/dismiss", json={"reason": "无"}).status_code == 403
        assert api.post(f"{FINDINGS}/{finding['id']}/rectify", json={}).status_code == 403
        page = browser(username)
        assert page.get("/audit/findings").status_code == 403
        assert page.get(f"/audit/findings/{finding['id']}").status_code == 403
        assert page.post("/audit/review").status_code == 403
    assert login("supervisor").get("/api/v1/audit/access-review").status_code == 200
    assert login("clerk").get("/api/v1/audit/access-review").status_code == 403


def test_the_findings_page_shows_evidence_and_turns_a_finding_into_a_rectification(app, client, login,
                                                                                   auditor):  # noqa: F811
    """R-SEC-4: through the pages, the auditor runs the review, opens the finding, reads its evidence
    rows and starts the rectification."""
    _fail(client, "clerk", 5)
    page = Browser(app)
    page.sign_in(auditor)
    r = page.post("/audit/review")
    assert r.status_code == 303
    html = text(page.get("/audit/findings"))
    assert "同一账号连续登录失败" in html and "clerk" in html
    finding_id = _findings(login(auditor), rule="failed_logins_account")[0]["id"]
    html = text(page.get(f"/audit/findings/{finding_id}"))
    assert html.count("登录失败") >= 5 and "证据" in html
    r = page.post(f"/audit/findings/{finding_id}/rectify", {"department": "NOWHERE", "severity": "medium"})
    assert r.status_code == 422 and "NOWHERE" in text(r)
    r = page.post(f"/audit/findings/{finding_id}/rectify", {"department": "", "severity": "medium", "note": ""})
    assert r.status_code == 303
    html = text(page.get(f"/audit/findings/{finding_id}"))
    assert "整改中" in html and "/requests/" in html


def test_the_review_runs_every_night_from_the_job_table(app, client, login, frozen, auditor):  # noqa: F811
    """R-SEC-4: the audit_review daily job fires at 03:00 Beijing time over the last day, records its
    findings as the platform, and moves to the next night."""
    from service import scheduler
    from service.anomaly_models import AuditFinding
    from service.models import ScheduledJob

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        scheduler.ensure_job(s, "audit_review", "anomalies", scheduler.next_daily(frozen(), time(3, 0)))
        s.commit()
        s.close()
    _fail(client, "fin_head", 5)
    frozen.advance(hours=18, minutes=1)  # 09:00 → 03:01 the next morning
    assert scheduler.run_due(app) >= 1
    with app.app_context():
        s = app.extensions["inkless.db"]()
        rules = s.scalars(select(AuditFinding.rule)).all()
        job = s.scalar(select(ScheduledJob).where(ScheduledJob.kind == "audit_review"))
        assert job.fired == 1 and job.due_at == scheduler.next_daily(frozen(), time(3, 0))
        s.close()
    assert "failed_logins_account" in rules
    (run,) = _events(app, action="audit_review_run")
    assert run.actor_id is None and run.detail["found"]["failed_logins_account"] == 1


def test_sign_ins_at_night_and_from_a_new_address(app, client, login, frozen, auditor):  # noqa: F811
    """R-SEC-4: a sign-in outside the working day, and one from an address the person never used."""
    def sign_in(address):
        r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": address})
        assert r.status_code == 200

    sign_in("10.0.0.5")  # 09:00, the usual place
    frozen.advance(hours=14, minutes=30)  # 23:30 Beijing time
    sign_in("203.0.113.9")
    api = login(auditor)
    api.post(REVIEW, json={})
    (night,) = _findings(api, rule="unusual_hours", person="clerk")  # the auditor signed in at 23:30 too
    assert night["username"] == "clerk" and night["facts"]["times"] == ["23:30"]
    (new,) = _findings(api, rule="new_address")
    assert new["address"] == "203.0.113.9" and new["facts"]["known"] == ["10.0.0.5"]
    # Thresholds are configuration: a working day to midnight sees nothing unusual.
    app.config["INKLESS"].anomaly_thresholds = {"work_day_ends": 24}
    frozen.advance(days=1)
    sign_in("10.0.0.5")
    api.post(REVIEW, json={})
    assert len(_findings(api, rule="unusual_hours", person="clerk")) == 1


def test_bulk_reads_secret_reads_elsewhere_privilege_changes_and_dormant_accounts(app, login, frozen,
                                                                                   auditor):  # noqa: F811
    """R-SEC-4: each rule's hit, with a configured threshold for the bulk reads."""
    from service import audit

    app.config["INKLESS"].anomaly_thresholds = {"bulk_reads_per_hour": 3}
    admin = login("office_admin")
    instance = admin.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
    for _ in range(3):
        assert admin.get(f"/api/v1/process-instances/{instance['id']}").status_code == 200
    set_clearance(login, "clerk", "秘密")
    secret = uploaded(login("clerk"), title="保密协议", security_level="秘密")
    # fin_head (FIN) reads OFFICE's 秘密 document, as the library records it.
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        audit.record(s, "document_viewed", "document", secret["id"], actor_id=_user_id(app, "fin_head"),
                     detail={"version": 1})
        s.commit()
        s.close()
    assert login("sysadmin").post("/api/v1/groups/designer/members", json={"username": "clerk"}).status_code == 201
    api = login(auditor)
    api.post(REVIEW, json={})
    (bulk,) = _findings(api, rule="bulk_reads")
    assert bulk["username"] == "office_admin" and bulk["facts"]["count"] >= 3
    (elsewhere,) = _findings(api, rule="secret_outside_department")
    assert elsewhere["username"] == "fin_head" and elsewhere["facts"]["title"] == "保密协议"
    changes = {(f["username"], f["facts"]["action"]) for f in _findings(api, rule="privilege_change")}
    assert ("sysadmin", "clearance_set") in changes and ("sysadmin", "group_member_added") in changes
    assert _findings(api, rule="dormant_account") == []

    frozen.advance(days=91)
    api.post(REVIEW, json={})
    dormant = {f["username"] for f in _findings(api, rule="dormant_account")}
    assert {"platform", "office_head", "supervisor"} <= dormant and auditor in dormant
    assert "office_admin" in dormant  # signed in, but 91 days ago


def test_the_monthly_access_review_for_supervisors(app, client, login, frozen, auditor):  # noqa: F811
    """R-SEC-4: per department, the month's sign-ins, failures, reads and findings; CSV export. (Three
    failures make a burst here: the threshold is configuration, and five would lock clerk out.)"""
    app.config["INKLESS"].anomaly_thresholds = {"failed_logins_per_account": 3}
    _fail(client, "clerk", 3)
    clerk = login("clerk")
    uploaded(clerk)
    login(auditor).post(REVIEW, json={})
    month = frozen().strftime("%Y-%m")
    sup = login("supervisor")
    report = sup.get("/api/v1/audit/access-review", query_string={"month": month}).get_json()
    office = next(row for row in report["departments"] if row["department"] == "OFFICE")
    assert office["sign_ins"] == 1 and office["failed_sign_ins"] == 3 and office["findings"] == 1
    assert report["rules"][0]["rule"] == "failed_logins_account" and report["rules"][0]["open"] == 1
    r = sup.get("/api/v1/audit/access-review", query_string={"month": month, "format": "csv"})
    table = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0][0] == "部门" and ["办公室", "1", "1", "3"] == next(r for r in table if r[0] == "办公室")[:4]
    assert sup.get("/api/v1/audit/access-review", query_string={"month": "13/2026"}).status_code == 422
    page = Browser(app)
    page.sign_in("supervisor")
    html = text(page.get("/audit/access-review", query_string={"month": month}))
    assert "每月访问审查" in html and "办公室" in html and "/audit/findings" not in html
    assert _events(app, action="access_review_read")


def test_inkless_audit_review_runs_it_from_the_command_line(app, client, org):
    """R-SEC-4: `inkless audit review` prints the new findings."""
    from service.cli import main

    _fail(client, "clerk", 5)
    cfg = app.config["INKLESS"]
    result = CliRunner().invoke(main, ["audit", "review"], env={
        "INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": "test-secret"})
    assert result.exit_code == 0, result.output
    assert "1 new findings" in result.output
    result = CliRunner().invoke(main, ["audit", "review", "--since", "tomorrow"], env={
        "INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": "test-secret"})
    assert result.exit_code == 1 and "since" in result.output
