"""R-SUP-5 ("a commendation on the person's record"): when the supervision group scores a department
in the quarterly assessment it may name people to commend; publishing the results writes one
commendation performance record per person, on their own department and linked to the assessment.
The records API and page show the person and filter by them (`?user=`), the XLSX export has a 人员
column, and a person reads the records about themselves (`?user=me`) without any other right to
read performance records — but nobody else's.

The clock is the platform's frozen clock (the organisation is created in 2026-Q4, the quarter then
assessed in January 2027), never the wall clock.
"""
from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import load_workbook
from sqlalchemy import select

from service.models import PerformanceRecord, User
from tests.service.test_pages import Browser
from tests.service.test_quarterly_assessment import (
    ASSESSED,
    _comment_all,
    _complete,
    _published,
    _start_by_hand,
    _task_data,
    _tasks,
)

CLERK_NAME = "王文书"
REASON = "档案数字化工作成绩突出"
PASSING = {"FIN": 80, "HQ": 75, "OFFICE": 95, "PLATFORM": 90}  # nobody below the bar: no rectification


def _db(app):
    return app.extensions["inkless.db"]()


def _set_user(app, username, **values):
    s = _db(app)
    try:
        user = s.scalar(select(User).where(User.username == username))
        for key, value in values.items():
            setattr(user, key, value)
        s.commit()
    finally:
        s.close()


def _score_tasks(login, instance_id) -> dict[str, str]:
    """The supervision group's scoring tasks of the instance, by department code."""
    supervisor = login("supervisor")
    tasks = {_task_data(supervisor, t["id"])["data"]["scored_department"]: t["id"]
             for t in _tasks(supervisor, instance_id=instance_id)}
    assert sorted(tasks) == ASSESSED
    return tasks


def _assessment_waiting_for_scores(login, frozen):
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)  # 2027-01-05 09:00 Beijing time
    instance_id = _start_by_hand(login)
    _comment_all(login, instance_id)
    return instance_id, _score_tasks(login, instance_id)


def test_supervisors_commend_a_person_and_it_is_on_their_own_record(app, frozen, login):
    """R-SUP-5: the supervisors name clerk while scoring the office; clerk gets a commendation
    record of their own (department OFFICE, linked to the assessment), shown by name in the API,
    on the page and in the XLSX; clerk reads it, fin_head does not."""
    _set_user(app, "clerk", full_name=CLERK_NAME)
    instance_id, tasks = _assessment_waiting_for_scores(login, frozen)
    supervisor = login("supervisor")

    form = _task_data(supervisor, tasks["OFFICE"])["form"]["properties"]
    assert form["commended"]["title"] == "表彰人员" and form["commended"]["items"]["format"] == "user"
    en = supervisor.get(f"/api/v1/tasks/{tasks['OFFICE']}", query_string={"lang": "en"}).get_json()
    assert en["form"]["properties"]["commended"]["title"] == "People commended"

    # Somebody who is not an active user cannot be named (the form's `user` format).
    r = supervisor.post(f"/api/v1/tasks/{tasks['OFFICE']}/complete",
                        json={"data": {"score": 95, "commended": ["nobody"]}})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["details"][0]["field"].startswith("commended")

    result = None
    for code, task_id in sorted(tasks.items()):
        data = {"score": PASSING[code], "remarks": f"{code} 评分说明"}
        if code == "OFFICE":
            data |= {"commended": ["clerk"], "commendation_reason": REASON}
        result = _complete(supervisor, task_id, data)
    assert result["state"] == "completed", [i["message"] for i in result["incidents"]]
    assert _published(app, instance_id)["results"]["OFFICE"]["commended"] == ["clerk"]

    # The API: clerk's own commendation beside the departments' records.
    items = supervisor.get("/api/v1/performance-records", query_string={"period": "2026-Q4"}).get_json()["items"]
    (mine,) = [i for i in items if i["user"] == "clerk"]
    assert mine["kind"] == "commendation" and mine["kind_name"] == "表彰"
    assert mine["person"] == CLERK_NAME and mine["department_code"] == "OFFICE"
    assert mine["assessment_instance_id"] == instance_id
    assert "通报表扬" in mine["detail"] and "绩效加分" in mine["detail"] and REASON in mine["detail"]
    departments = [i for i in items if i["user"] is None]
    assert {(i["department_code"], i["kind"]) for i in departments} == {("OFFICE", "commendation"),
                                                                         ("PLATFORM", "commendation")}
    assert all(i["person"] is None for i in departments)
    # … and only hers under ?user=clerk; an unknown login name is not found.
    only = supervisor.get("/api/v1/performance-records", query_string={"user": "clerk"}).get_json()["items"]
    assert [i["id"] for i in only] == [mine["id"]]
    assert supervisor.get("/api/v1/performance-records", query_string={"user": "nobody"}).status_code == 404
    s = _db(app)
    try:
        record = s.get(PerformanceRecord, mine["id"])
        clerk_id = s.scalar(select(User.id).where(User.username == "clerk"))
        assert record.user_id == clerk_id and record.grade is None
    finally:
        s.close()

    # clerk reads the records about themselves — only those — but still not everybody's.
    clerk = login("clerk")
    for who in ("me", "clerk"):
        r = clerk.get("/api/v1/performance-records", query_string={"user": who})
        assert r.status_code == 200, r.get_json()
        assert [i["id"] for i in r.get_json()["items"]] == [mine["id"]]
    assert clerk.get("/api/v1/performance-records").status_code == 403
    assert clerk.get("/api/v1/performance-records", query_string={"user": "office_head"}).status_code == 403

    # fin_head may not see clerk's record, and has none of their own.
    fin_head = login("fin_head")
    assert fin_head.get("/api/v1/performance-records", query_string={"user": "clerk"}).status_code == 403
    assert fin_head.get("/api/v1/performance-records").status_code == 403
    assert fin_head.get("/api/v1/performance-records", query_string={"user": "me"}).get_json()["items"] == []
    # FIN's administrator reads FIN's records, not the office's person; OFFICE's reads clerk's.
    fin = login("fin_admin").get("/api/v1/performance-records").get_json()["items"]
    assert all(i["user"] != "clerk" for i in fin)
    office = login("office_admin").get("/api/v1/performance-records", query_string={"user": "clerk"})
    assert [i["id"] for i in office.get_json()["items"]] == [mine["id"]]

    # The XLSX for the HR office has a 人员 column with clerk's name.
    x = supervisor.get("/api/v1/performance-records/export", query_string={"period": "2026-Q4"})
    assert x.status_code == 200
    table = [list(row) for row in load_workbook(io.BytesIO(x.data)).active.iter_rows(values_only=True)]
    column = table[0].index("人员")
    (row,) = [row for row in table[1:] if row[column] == CLERK_NAME]
    assert row[1] == "办公室" and row[2] == "表彰" and REASON in row[table[0].index("详情")]
    assert sum(1 for row in table[1:] if row[column] in (None, "")) == len(departments)
    mine_x = clerk.get("/api/v1/performance-records/export", query_string={"user": "me"})
    assert mine_x.status_code == 200
    rows = list(load_workbook(io.BytesIO(mine_x.data)).active.iter_rows(values_only=True))[1:]
    assert [r[column] for r in rows] == [CLERK_NAME]

    # The page: the supervisors see the person by name; clerk sees their own page.
    page = Browser(app)
    page.sign_in("supervisor")
    html = page.get("/performance?period=2026-Q4").get_data(as_text=True)
    assert "人员" in html and CLERK_NAME in html and REASON in html
    own = Browser(app)
    own.sign_in("clerk")
    r = own.get("/performance?user=me")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert CLERK_NAME in html and REASON in html and f"#{instance_id}</a>" in html
    assert "user=me" in html  # the export link keeps to their own records
    assert own.get("/performance").status_code == 403
    other = Browser(app)
    other.sign_in("fin_head")
    assert other.get("/performance?user=clerk").status_code == 403


def test_a_person_no_longer_active_is_not_commended(app, frozen, login):
    """R-SUP-5: named when scoring, deactivated before the results are published — publishing
    fails with a message naming them, and no record is written until it is put right."""
    instance_id, tasks = _assessment_waiting_for_scores(login, frozen)
    supervisor = login("supervisor")
    order = ["OFFICE"] + [c for c in sorted(tasks) if c != "OFFICE"]
    result = None
    for code in order:
        data = {"score": PASSING[code]}
        if code == "OFFICE":
            data["commended"] = ["clerk"]
        result = _complete(supervisor, tasks[code], data)
        if code == "OFFICE":
            _set_user(app, "clerk", active=False)  # left before the last department was scored
    assert result["state"] != "completed"
    messages = " ".join(i["message"] for i in result["incidents"])
    assert "clerk" in messages and "active" in messages, result["incidents"]
    s = _db(app)
    try:
        assert s.scalars(select(PerformanceRecord)).all() == []
    finally:
        s.close()
