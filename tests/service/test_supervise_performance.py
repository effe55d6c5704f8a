"""R-SUP-5: each assessment result's consequence is a durable performance record — commendation,
circulated criticism, rectification with its deadline — linked to the assessment, readable through
the API by supervisors and the department concerned, and exported as XLSX for the HR office."""
from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from tests.service.test_pages import Browser
from tests.service.test_quarterly_assessment import (
    _comment_all,
    _deploy_stand_in_if_needed,
    _score_all,
    _start_by_hand,
)


def test_assessment_results_become_performance_records(app, frozen, login):
    _deploy_stand_in_if_needed(login)
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)  # 2027-01-05 09:00 Beijing time
    instance_id = _start_by_hand(login)
    _comment_all(login, instance_id)
    result = _score_all(login, instance_id, {"FIN": 59.5, "HQ": 88, "OFFICE": 95, "PLATFORM": 70})
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]

    supervisor = login("supervisor")
    r = supervisor.get("/api/v1/performance-records", query_string={"period": "2026-Q4"})
    assert r.status_code == 200, r.get_json()
    records = {(i["department_code"], i["kind"]): i for i in r.get_json()["items"]}
    assert set(records) == {("OFFICE", "commendation"), ("FIN", "criticism"), ("FIN", "rectification"),
                            ("PLATFORM", "rectification")}
    assert "绩效加分" in records[("OFFICE", "commendation")]["detail"]
    assert records[("OFFICE", "commendation")]["grade"] == "优秀"
    assert records[("FIN", "rectification")]["deadline"] == "2027年01月20日 23:59"  # 15 days (不合格)
    assert records[("PLATFORM", "rectification")]["deadline"] == "2027年02月04日 23:59"  # 30 days
    assert all(i["assessment_instance_id"] == instance_id for i in records.values())

    # A department administrator reads their own department's; an ordinary user none.
    fin = login("fin_admin").get("/api/v1/performance-records").get_json()["items"]
    assert {i["department_code"] for i in fin} == {"FIN"} and len(fin) == 2
    assert login("clerk").get("/api/v1/performance-records").status_code == 403

    x = supervisor.get("/api/v1/performance-records/export", query_string={"period": "2026-Q4"})
    assert x.status_code == 200 and "attachment" in x.headers["Content-Disposition"]
    table = [list(row) for row in load_workbook(io.BytesIO(x.data)).active.iter_rows(values_only=True)]
    header = table[0]
    assert header[:3] == ["期间", "部门", "结果运用"]
    rows = {(row[1], row[2]) for row in table[1:]}
    assert ("办公室", "表彰") in rows and ("财务处", "通报批评") in rows and ("财务处", "限期整改") in rows

    # The page: the same records, in Chinese, with the export link.
    page = Browser(app)
    page.sign_in("supervisor")
    r = page.get("/performance?period=2026-Q4")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "通报批评" in html and "绩效加分" in html and "/api/v1/performance-records/export" in html
    clerk = Browser(app)
    clerk.sign_in("clerk")
    assert clerk.get("/performance").status_code == 403
