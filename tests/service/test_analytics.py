"""Optimisation statistics per BPMN element (R-WF-4) and the indicator dashboard's data, exports and
drill-down (R-SUP-3), through the HTTP API and the pages; numbers worked out by hand in the comments."""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from service import audit, definitions
from service.models import Department, InstanceStep, ProcessDefinition, ProcessInstance, User
from tests.service.diagrams import script_process
from tests.service.flows import complete, only_task
from tests.service.test_pages import Browser


def z(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _deploy(app, key: str, times: int = 1) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        for _ in range(times):
            definitions.deploy(s, None, [(f"{key}.bpmn", script_process(key, "done = True"))])
        s.commit()
        s.close()


class History:
    """Writes instances and history rows with explicit times (the way years of use would)."""

    def __init__(self, s, key: str):
        self.s = s
        self.key = key
        self.definitions = {d.version: d for d in s.scalars(select(ProcessDefinition).where(
            ProcessDefinition.key == key))}
        # The people whose history this writes had their accounts before it: the indicators count
        # only accounts that existed in a period (docs/indicators.md), so an account opened at the
        # test's moment (December) would not be one of November's people.
        s.execute(update(User).values(created_at=z(2026, 9, 1)))

    def instance(self, version: int, department: str, by: str = "clerk") -> ProcessInstance:
        user = self.s.scalar(select(User).where(User.username == by))
        department_id = self.s.scalar(select(Department.id).where(Department.code == department))
        row = ProcessInstance(definition_id=self.definitions[version].id, process_key=self.key, version=version,
                              started_by=user.id, department_id=department_id, started_at=z(2026, 10, 1),
                              engine_state="{}", serializer_version="1", state="completed")
        self.s.add(row)
        self.s.flush()
        return row

    def step(self, row, element: str, completed: datetime, seconds: int | None, wait: int | None = None,
             decision: str | None = None, by: str = "office_head") -> None:
        started = completed - timedelta(seconds=seconds) if seconds is not None else None
        user = self.s.scalar(select(User).where(User.username == by))
        self.s.add(InstanceStep(
            instance_id=row.id, definition_id=row.definition_id, element_id=element, name=element.title(),
            kind="UserTask", task_id=f"t{row.id}-{element}-{completed.timestamp()}", user_id=user.id,
            started_at=started, claimed_at=started + timedelta(seconds=wait) if wait is not None else None,
            completed_at=completed, decision=decision, duration_s=seconds, wait_s=wait))


@pytest.fixture
def history(app, org, frozen):
    """Version 1 and 2 of `stats`; steps completed in November 2026 unless said otherwise."""
    _deploy(app, "stats", times=2)
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        h = History(s, "stats")
        a, b, c, d = (h.instance(1, "OFFICE") for _ in range(4))
        nov = z(2026, 11, 10, 2)
        # prepare, version 1: 60 120 180 240 600 s; waits 30 60 90 (two not claimed); returned twice;
        # instance `a` passes through prepare twice (one re-entry).
        h.step(a, "prepare", nov, 60, wait=30, decision="return")
        h.step(a, "prepare", nov + timedelta(hours=1), 120, wait=60, decision="return")
        h.step(b, "prepare", nov, 180, wait=90, decision="approve")
        h.step(c, "prepare", nov, 240)
        h.step(d, "prepare", nov, 600)
        h.step(a, "review", nov + timedelta(hours=3), 3600)
        # prepare, version 2 (after the redesign): 30 and 90 s
        e, f = h.instance(2, "OFFICE"), h.instance(2, "OFFICE")
        h.step(e, "prepare", nov, 30)
        h.step(f, "prepare", nov, 90)
        # Outside the statistics: completed in September, no ready time (recorded before it was kept),
        # and a FIN instance that only FIN's administrator (and supervisors) count.
        h.step(c, "review", z(2026, 9, 1), 50)
        h.step(c, "sign", nov, None)
        fin = h.instance(2, "FIN", by="fin_head")
        h.step(fin, "prepare", nov, 7200, by="fin_admin")
        s.commit()
        s.close()


def test_element_statistics_count_mean_median_p90_exactly(history, login):
    """R-WF-4: per element over the chosen period, by hand (p90 and median interpolate linearly)."""
    r = login("office_admin").get("/api/v1/analytics/elements",
                                  query_string={"process_key": "stats", "period": "2026-Q4"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["versions"] == [1, 2]
    assert body["period"]["label"] == "2026-Q4"
    assert set(body["elements"]) == {"prepare", "review"}  # sign has no ready time, FIN is not OFFICE's
    prepare = body["elements"]["prepare"]
    # all versions: 30 60 90 120 180 240 600 → mean 1320/7, median 120, p90 at rank 5.4: 240 + .4 × 360
    assert prepare["stats"] == {"count": 7, "mean": 188.571, "median": 120.0, "p90": 384.0,
                                "waited": 3, "wait_mean": 60.0, "wait_median": 60.0, "wait_p90": 84.0,
                                "returns": 2, "reentries": 1}
    # version 1: 60 120 180 240 600 → mean 240, median 180, p90 at rank 3.6: 240 + .6 × 360 = 456
    v1, v2 = prepare["versions"]["1"], prepare["versions"]["2"]
    assert (v1["count"], v1["mean"], v1["median"], v1["p90"]) == (5, 240.0, 180.0, 456.0)
    # version 2: 30 90 → mean 60, median 60, p90 at rank 0.9: 30 + .9 × 60 = 84; nobody claimed
    assert (v2["count"], v2["mean"], v2["median"], v2["p90"], v2["waited"], v2["wait_mean"]) == (
        2, 60.0, 60.0, 84.0, 0, None)
    review = body["elements"]["review"]
    assert review["stats"]["count"] == 1 and review["stats"]["mean"] == 3600.0
    # the heatmap: the slowest element on average is 1, the others in proportion
    assert review["heat"] == 1.0 and prepare["heat"] == round(188.571 / 3600, 3)
    assert review["label"] == "1.0 小时"
    assert body["bottlenecks"] == ["review", "prepare"]

    one = login("office_admin").get("/api/v1/analytics/elements",
                                    query_string={"process_key": "stats", "period": "2026-Q4", "version": 2})
    assert one.get_json()["elements"]["prepare"]["stats"]["count"] == 2


def test_element_statistics_by_department_and_role(history, login):
    """Supervisors see every department; a department administrator only theirs; others nothing."""
    args = {"process_key": "stats", "period": "2026-11"}
    sup = login("supervisor").get("/api/v1/analytics/elements", query_string=args).get_json()
    assert sup["elements"]["prepare"]["stats"]["count"] == 8  # OFFICE's 7 and FIN's one
    fin = login("fin_admin").get("/api/v1/analytics/elements", query_string=args).get_json()
    assert fin["elements"]["prepare"]["stats"]["count"] == 1
    assert fin["elements"]["prepare"]["stats"]["mean"] == 7200.0
    assert login("clerk").get("/api/v1/analytics/elements", query_string=args).status_code == 403
    bad = login("supervisor").get("/api/v1/analytics/elements", query_string={**args, "period": "2026-13"})
    assert bad.status_code == 422 and bad.get_json()["details"][0]["field"] == "period"
    for dates, field in ((("2026-02-30", "2026-03-01"), "start"), (("2026-11-01", "2026-11-31"), "end"),
                         (("2026-11-05", "2026-11-01"), "end")):
        r = login("supervisor").get("/api/v1/analytics/elements",
                                    query_string={"process_key": "stats", "start": dates[0], "end": dates[1]})
        assert r.status_code == 422 and r.get_json()["details"][0]["field"] == field, dates
    days = login("supervisor").get("/api/v1/analytics/elements",
                                   query_string={"process_key": "stats", "start": "2026-11-10", "end": "2026-11-11"})
    assert days.get_json()["elements"]["prepare"]["stats"]["count"] == 8  # Beijing days: 10:00 on the 10th
    missing = login("supervisor").get("/api/v1/analytics/elements", query_string={"process_key": "nothing"})
    assert missing.status_code == 404


def test_a_task_records_when_it_was_ready_claimed_and_done(app, login, frozen):
    """R-WF-4: the history keeps the ready and claim times the statistics are made of."""
    _deploy(app, "timed")
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "timed"}).get_json()
    ready = frozen.current
    task = only_task(clerk, instance_id=instance["id"])
    frozen.advance(minutes=10)
    assert clerk.post(f"/api/v1/tasks/{task['id']}/claim").status_code == 200
    frozen.advance(minutes=50)
    complete(clerk, task, {})
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        step = s.scalar(select(InstanceStep).where(InstanceStep.instance_id == instance["id"],
                                                   InstanceStep.element_id == "prepare"))
        assert (step.started_at, step.claimed_at, step.completed_at) == (
            ready, ready + timedelta(minutes=10), ready + timedelta(hours=1))
        assert step.definition_id is not None
        s.close()
    stats = login("supervisor").get("/api/v1/analytics/elements", query_string={"process_key": "timed"}).get_json()
    assert stats["elements"]["prepare"]["stats"]["mean"] == 3600.0
    assert stats["elements"]["prepare"]["stats"]["wait_mean"] == 600.0


@pytest.fixture
def decisions(app, org, frozen):
    """OFFICE had three decisions in November on two requests: one returned, then approved (passed,
    not the first time), one rejected; FIN one request approved. One OFFICE task was flagged
    overdue before it was completed (late)."""
    _deploy(app, "stats")
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        h = History(s, "stats")
        office, rejected, fin = h.instance(1, "OFFICE"), h.instance(1, "OFFICE"), h.instance(1, "FIN", by="fin_head")
        nov = z(2026, 11, 10, 2)
        h.step(office, "review", nov, 60, decision="return")
        h.step(office, "review", nov + timedelta(hours=1), 60, decision="approve")
        h.step(rejected, "review", nov + timedelta(hours=2), 60, decision="reject", by="clerk")
        h.step(fin, "review", nov, 60, decision="approve")
        late = s.scalar(select(InstanceStep).where(InstanceStep.decision == "reject"))
        frozen.current = nov + timedelta(hours=1, minutes=30)
        audit.record(s, "task_overdue", "task", late.task_id, detail={"instance": office.id, "element": "review"})
        frozen.current = z(2026, 12, 1, 1)
        s.commit()
        s.close()


def test_indicators_per_department_as_each_role_may_see(decisions, login):
    """R-SUP-3: supervisors see every department and the platform; a department administrator
    only their own department; an ordinary user nothing."""
    sup = login("supervisor").get("/api/v1/analytics/indicators", query_string={"period": "2026-11"}).get_json()
    assert sup["period"]["name"] == "2026年11月"
    assert sup["departments"]["OFFICE"]["approval_decisions"] == 3
    # docs/indicators.md §4: two OFFICE requests decided, one passed at last, none the first time
    assert sup["departments"]["OFFICE"]["submissions"] == 2
    assert sup["departments"]["OFFICE"]["approval_pass_rate"] == 0.5
    assert sup["departments"]["OFFICE"]["first_pass_rate"] == 0.0
    assert sup["departments"]["FIN"]["approval_pass_rate"] == 1.0
    assert sup["platform"]["approval_decisions"] == 4
    office = login("office_admin").get("/api/v1/analytics/indicators", query_string={"period": "2026-11"}).get_json()
    assert list(office["departments"]) == ["OFFICE"] and office["platform"] is None
    assert login("clerk").get("/api/v1/analytics/indicators").status_code == 403


def test_trend_by_month_and_quarter(decisions, login):
    sup = login("supervisor")
    months = sup.get("/api/v1/analytics/indicators/trend", query_string={"grain": "month", "count": 3}).get_json()
    assert [p["label"] for p in months["periods"]] == ["2026-10", "2026-11", "2026-12"]
    assert months["series"]["approval_pass_rate"]["OFFICE"] == [None, 0.5, None]
    assert months["series"]["approval_pass_rate"]["*"][1] == pytest.approx(2 / 3)
    quarters = sup.get("/api/v1/analytics/indicators/trend", query_string={"grain": "quarter", "count": 2}).get_json()
    assert [p["label"] for p in quarters["periods"]] == ["2026-Q3", "2026-Q4"]
    assert quarters["series"]["approval_pass_rate"]["FIN"] == [None, 1.0]
    fin = login("fin_admin").get("/api/v1/analytics/indicators/trend").get_json()
    assert set(fin["series"]["usage_rate"]) == {"FIN"}


def test_drill_down_lists_late_and_returned_records(decisions, login):
    sup = login("supervisor")
    late = sup.get("/api/v1/analytics/indicators/records", query_string={"kind": "late", "period": "2026-11"})
    assert late.status_code == 200, late.get_json()
    items = late.get_json()["items"]
    assert [(i["element_id"], i["who"]) for i in items] == [("review", "clerk")]
    returned = sup.get("/api/v1/analytics/indicators/records",
                       query_string={"kind": "returned", "period": "2026-11"}).get_json()["items"]
    assert sorted(i["decision"] for i in returned) == ["reject", "return"]
    fin = login("fin_admin").get("/api/v1/analytics/indicators/records",
                                 query_string={"kind": "returned", "period": "2026-11"}).get_json()
    assert fin["items"] == []


def test_export_csv_and_xlsx_hold_the_dashboard_numbers(decisions, login):
    """R-SUP-3: the exported files open and carry the same numbers as the JSON."""
    sup = login("supervisor")
    r = sup.get("/api/v1/analytics/indicators/export", query_string={"period": "2026-11", "format": "csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    header, office = rows[0], next(row for row in rows if row[1] == "OFFICE" and row[0] == "department")
    assert office[header.index("审批决定数")] == "3"
    assert float(office[header.index("流程审批通过率")]) == 0.5
    assert float(office[header.index("一次通过率")]) == 0.0

    r = sup.get("/api/v1/analytics/indicators/export", query_string={"period": "2026-11", "format": "xlsx"})
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(r.data)).active
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = table[0]
    fin = next(row for row in table if row[1] == "FIN" and row[0] == "department")
    assert fin[header.index("流程审批通过率")] == 1.0
    assert fin[header.index("审批决定数")] == 1
    people = [row for row in table if row[0] == "person"]
    assert {row[3] for row in people} >= {"clerk", "fin_head"}


def test_dashboards_read_snapshots_that_the_scheduler_keeps_fresh(app, decisions, login, frozen):
    """Dashboards at scale (docs/architecture.md): a closed period's figures are served from a
    snapshot for a day, a running period's for 15 minutes; the scheduler refreshes them."""
    from service.models import IndicatorSnapshot
    from service.scheduler import ensure_builtin_jobs, run_due

    sup = login("supervisor")
    first = sup.get("/api/v1/analytics/indicators", query_string={"period": "2026-11"}).get_json()
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        h = History(s, "stats")
        h.step(h.instance(1, "OFFICE"), "review", z(2026, 11, 20), 60, decision="approve")
        s.commit()
        s.close()
    again = sup.get("/api/v1/analytics/indicators", query_string={"period": "2026-11"}).get_json()
    assert again["departments"]["OFFICE"]["approval_decisions"] == 3
    assert again["computed_at"] == first["computed_at"]
    frozen.advance(days=1)
    later = sup.get("/api/v1/analytics/indicators", query_string={"period": "2026-11"}).get_json()
    assert later["departments"]["OFFICE"]["approval_decisions"] == 4

    ensure_builtin_jobs(app)
    run_due(app)
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        stored = s.scalars(select(IndicatorSnapshot)).all()
        s.close()
    labels = {(row.period_start, row.period_end) for row in stored}
    assert len(stored) == 1 + 3  # November's from the request, and three refreshed by the job
    assert (z(2026, 11, 30, 16), z(2026, 12, 31, 16)) in labels  # the running month first
    assert (z(2026, 9, 30, 16), z(2026, 12, 31, 16)) in labels  # and the running quarter


# -- the pages ------------------------------------------------------------------------------------

def _text(r) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.get_data(as_text=True))))


def test_dashboard_table_exports_and_drill_down(app, decisions):
    browser = Browser(app)
    browser.sign_in("supervisor")
    r = browser.get("/analytics?period=2026-11")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'href="/analytics"' in browser.get("/").get_data(as_text=True)  # in the navigation
    row = re.search(r'<tr data-department="OFFICE">(.*?)</tr>', page, re.S).group(1)
    assert "50.0%" in row and "0.0%" in row  # approval pass rate 1/2, first time 0/2
    assert "/api/v1/analytics/indicators/export?format=xlsx&amp;period=2026-11" in page
    assert 'data-trend="/api/v1/analytics/indicators/trend?grain=month&amp;count=12"' in page
    assert "build/charts.js" in page
    late = browser.get("/analytics/records?kind=late&period=2026-11")
    assert late.status_code == 200 and "clerk" in _text(late)
    assert "style=" not in page and "<script>" not in page  # the strict CSP: nothing inline


def test_department_admin_sees_only_their_department_and_users_nothing(app, decisions):
    admin = Browser(app)
    admin.sign_in("fin_admin")
    page = admin.get("/analytics?period=2026-11").get_data(as_text=True)
    assert 'data-department="FIN"' in page and 'data-department="OFFICE"' not in page
    clerk = Browser(app)
    clerk.sign_in("clerk")
    assert clerk.get("/analytics").status_code == 403
    assert clerk.get("/analytics/optimise").status_code == 403
    assert 'href="/analytics"' not in clerk.get("/").get_data(as_text=True)


def test_optimisation_page_heatmap_bottlenecks_and_versions(app, history):
    browser = Browser(app)
    browser.sign_in("office_admin")
    r = browser.get("/analytics/optimise?process=stats&period=2026-Q4")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'data-overlays="/api/v1/analytics/elements?process_key=stats&amp;period=2026-Q4"' in page
    assert 'data-bpmn-viewer="/api/v1/process-definitions/stats/xml?version=2"' in page
    bottlenecks = re.search(r'<ol id="bottlenecks">(.*?)</ol>', page, re.S).group(1)
    assert bottlenecks.index("review") < bottlenecks.index("准备")  # names from the diagram, else the id
    prepare = re.search(r'<tr data-element="prepare">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", prepare)
    assert cells[:5] == ["7", "3 分钟", "2 分钟", "6 分钟", "3"]  # 188.6 s, 120 s, 384 s; 3 claimed
    assert 'id="version-table"' in page
    one = browser.get("/analytics/optimise?process=stats&period=2026-Q4&version=1").get_data(as_text=True)
    assert 'id="version-table"' not in one


def test_export_defuses_formulas_and_drill_down_lists_sandbox_refusals(app, decisions, login):
    """A name that a spreadsheet would run as a formula is exported as text; a sandbox refusal
    recorded on an instance is listed behind the security indicator (R-SUP-3)."""
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        clerk = s.scalar(select(User).where(User.username == "clerk"))
        clerk.full_name = '=HYPERLINK("http://evil")'
        row = s.scalar(select(ProcessInstance).where(ProcessInstance.department_id == clerk.department_id))
        row.incidents = [{"element": "review", "kind": "forbidden", "line": 1, "message": "import os",
                          "at": z(2026, 11, 15).isoformat()},
                         {"element": "review", "kind": "script", "line": 1, "message": "1/0",
                          "at": z(2026, 11, 16).isoformat()}]
        s.commit()
        s.close()
    sup = login("supervisor")
    r = sup.get("/api/v1/analytics/indicators/export", query_string={"period": "2026-11", "format": "csv"})
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert ["person", "OFFICE", '\'=HYPERLINK("http://evil")', "clerk"] == next(
        row for row in rows if row[3] == "clerk")[:4]
    refusals = sup.get("/api/v1/analytics/indicators/records",
                       query_string={"kind": "incidents", "period": "2026-11"}).get_json()["items"]
    assert [(i["element_id"], i["message"]) for i in refusals] == [("review", "import os")]
    assert login("fin_admin").get("/api/v1/analytics/indicators/records",
                                  query_string={"kind": "incidents", "period": "2026-11"}).get_json()["items"] == []
