"""Form fields for the platform's own things (issue 17): departments chosen by name, people by
search, native date and time pickers sent as ISO 8601 with +08:00, durations; every view shows the
names and formatted values, never the codes."""
from __future__ import annotations

import re

from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from service import db, forms
from service.errors import InvalidForm
from service.models import OpenTask, User
from service.pages import fields
from tests.service.test_pages import browser, text  # noqa: F401  (the browser fixture)


def _name(app, username: str, full_name: str) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        s.execute(update(User).where(User.username == username).values(full_name=full_name))
        s.commit()
        s.close()


def _task(app, element_id: str) -> OpenTask:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        task = s.scalar(select(OpenTask).where(OpenTask.element_id == element_id))
        s.expunge_all()
        s.close()
        return task


def _report(app, browser) -> tuple:  # noqa: F811
    """The clerk starts a fault report and fills it in through the page."""
    _name(app, "clerk", "张文书")
    clerk = browser("clerk")
    r = clerk.post("/start/fault_report")
    assert r.status_code == 302
    task_url = r.headers["Location"]
    page = text(clerk.get(task_url))
    assert re.search(r'<input id="f-occurred_at" name="occurred_at" type="datetime-local"', page)
    department = re.search(r'<select id="f-fault_department" name="fault_department".*?</select>', page, re.S).group(0)
    assert '<option value="OFFICE" selected>办公室</option>' in department  # the clerk's own, by name
    assert '<option value="FIN" >财务处</option>' in department
    assert "ISO 8601" not in page
    return clerk, task_url


def test_a_clerk_reports_a_fault_with_a_picker_and_a_department_list(app, browser):  # noqa: F811
    """R-OPS-3 (issue 17): the time comes from a native picker and is kept as ISO 8601 with
    the platform's offset; the department is chosen by name; the reviewer reads names and
    `2026年12月3日 09:30`, not codes."""
    clerk, task_url = _report(app, browser)
    r = clerk.post(task_url, {"occurred_at": "2026-12-03T09:30", "fault_department": "FIN", "affected_area": "process",
                              "symptom": "提交审批时页面提示“服务器错误”"})
    assert r.status_code == 302, text(r)
    triage = _task(app, "triage_fault")
    assert triage.data["occurred_at"] == "2026-12-03T09:30:00+08:00"
    assert triage.data["fault_department"] == "FIN"
    assert "张文书 报告:2026年12月3日 09:30 起" in triage.instructions

    platform = browser("platform")
    page = text(platform.get(f"/tasks/{triage.id}"))
    assert "张文书 报告:2026年12月3日 09:30 起" in page
    request_page = text(platform.get(f"/requests/{triage.instance_id}"))
    assert "财务处" in request_page and "2026年12月3日 09:30" in request_page
    assert "+08:00" not in request_page and ">FIN<" not in request_page


def test_a_department_or_time_that_is_not_one_is_refused_next_to_its_field(app, browser):  # noqa: F811
    """R-OPS-3 (issue 17): a department code that names none and a time that is not one are refused
    with the field's name, in Chinese, and the page keeps what was typed."""
    clerk, task_url = _report(app, browser)
    r = clerk.post(task_url, {"occurred_at": "昨天下午", "fault_department": "NOPE", "affected_area": "process",
                              "symptom": "打不开"})
    assert r.status_code == 422
    page = text(r)
    assert "故障所在部门：部门不存在，请从列表中选择" in page
    assert "故障发生时间不是有效的日期和时间" in page
    assert 'value="昨天下午"' in page


def test_durations_people_and_days_round_trip_and_are_shown_in_words(app, org):
    """R-WF-1 (issue 17): a duration is typed as an amount and a unit and kept as ISO 8601; a person
    is kept by login name and shown by full name; a date is shown as 2026年12月3日."""
    _name(app, "office_head", "王主任")
    schema = {"type": "object", "properties": {
        "limit": {"type": "string", "title": "处理时限", "format": "duration"},
        "owner": {"type": "string", "title": "责任人", "format": "user"},
        "day": {"type": "string", "title": "日期", "format": "date"}}}
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        s = db.session()
        data = fields.parse(schema, MultiDict([("limit", "8"), ("limit.unit", "H"), ("owner", "office_head"),
                                               ("day", "2026-12-03")]))
        assert data == {"limit": "PT8H", "owner": "office_head", "day": "2026-12-03"}
        forms.validate(schema, data, False, s)
        built = {f.name: f for f in fields.build(schema, None, {"limit": "P3D", "owner": "office_head"}, {})}
        assert (built["limit"].attrs["amount"], built["limit"].attrs["unit"]) == ("3", "D")
        assert built["owner"].widget == "person" and ("office_head", "王主任（办公室）") in built["owner"].options
        shown = dict(fields.describe(data | {"limit": "PT90M"}, fields.labels([schema])))
        assert shown == {"处理时限": "90 分钟", "责任人": "王主任", "日期": "2026年12月3日"}
        try:
            forms.validate(schema, {"limit": "8 小时", "owner": "nobody"}, False, s)
        except InvalidForm as e:
            assert {d["field"]: d["message"] for d in e.details} == {
                "limit": "处理时限不是有效的时长", "owner": "责任人：此人不存在或已停用，请从列表中选择"}
        else:
            raise AssertionError("a bad duration and an unknown person were accepted")


def test_the_diagram_shows_lane_names_without_performer_specs(app, browser):  # noqa: F811
    """R-WF-1 (issue 17): a lane reads `报告人`, not `报告人 (initiator)`; the engine keeps the spec."""
    clerk, task_url = _report(app, browser)
    instance_id = _task(app, "report_fault").instance_id
    xml = text(clerk.get(f"/requests/{instance_id}/diagram.xml"))
    assert 'name="报告人"' in xml and "(initiator)" not in xml
