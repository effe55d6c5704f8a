"""Task forms in the browser: every supported field type renders from JSON Schema + UI schema, a
refused submission shows each message next to its field and keeps what was typed (issue 6)."""
from __future__ import annotations

import io
import json
import re

import pytest

from tests.service.test_pages import Browser, text

FORM = {
    "title": "出差登记",
    "type": "object",
    "required": ["title", "people", "trip_date", "transport", "lodging", "members", "promise"],
    "properties": {
        "ref": {"type": "string", "title": "编号", "readOnly": True},
        "title": {"type": "string", "title": "事由", "minLength": 2, "maxLength": 50, "description": "简要说明"},
        "details": {"type": "string", "title": "详细说明"},
        "people": {"type": "integer", "title": "人数", "minimum": 1, "maximum": 20},
        "budget": {"type": "number", "title": "预算", "minimum": 0},
        "trip_date": {"type": "string", "title": "出发日期", "format": "date"},
        "contact": {"type": "string", "title": "联系邮箱", "format": "email"},
        "transport": {"type": "string", "title": "交通方式", "oneOf": [
            {"const": "train", "title": "火车"}, {"const": "plane", "title": "飞机"},
            {"const": "car", "title": "公务车"}, {"const": "bus", "title": "大巴"}]},
        "lodging": {"type": "string", "title": "住宿", "enum": ["yes", "no"], "enumNames": ["需要", "不需要"]},
        "cities": {"type": "array", "title": "途经城市", "uniqueItems": True,
                   "items": {"type": "string", "enum": ["西宁", "格尔木", "海东"]}},
        "tags": {"type": "array", "title": "标签", "items": {"type": "string", "oneOf": [
            {"const": "urgent", "title": "紧急"}, {"const": "overseas", "title": "境外"}]}},
        "promise": {"type": "boolean", "title": "承诺遵守差旅规定", "const": True},
        "members": {"type": "array", "title": "同行人员", "minItems": 1, "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "title": "姓名", "minLength": 1},
                           "phone": {"type": "string", "title": "电话", "pattern": "^[0-9]{11}$"}}}},
    },
}
UI = {
    "ui:order": ["ref", "title", "*"],
    "details": {"ui:widget": "textarea", "ui:help": "可选"},
    "cities": {"ui:widget": "select"},
}
BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_trip" targetNamespace="http://inkless">
  <bpmn:process id="business_trip" name="出差登记" isExecutable="true">
    <bpmn:laneSet id="ls_trip">
      <bpmn:lane id="lane_trip" name="initiator">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>register</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="register" name="登记出差">
      <bpmn:extensionElements>
        <spiffworkflow:preScript>ref = "TRIP-001"</spiffworkflow:preScript>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="trip.json" />
          <spiffworkflow:property name="formUiSchemaFilename" value="trip.uischema.json" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="register" />
    <bpmn:sequenceFlow id="f2" sourceRef="register" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def trip_task(app, login):
    files = [(io.BytesIO(BPMN.encode()), "trip.bpmn"),
             (io.BytesIO(json.dumps(FORM, ensure_ascii=False).encode()), "trip.json"),
             (io.BytesIO(json.dumps(UI, ensure_ascii=False).encode()), "trip.uischema.json")]
    r = login("sysadmin").post("/api/v1/process-definitions", data={"files": files},
                               content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    clerk = Browser(app)
    clerk.sign_in("clerk")
    clerk.get("/start")
    r = clerk.post("/start/business_trip")
    assert r.status_code == 302 and r.headers["Location"].startswith("/tasks/")
    return clerk, r.headers["Location"]


def test_every_field_type_renders(trip_task):
    clerk, task_url = trip_task
    page = text(clerk.get(task_url))
    # read-only: shown, not editable
    assert '<p class="label" id="f-ref-label">编号</p>' in page and "TRIP-001" in page
    assert 'name="ref"' not in page
    # text with help and required marker, textarea, integer / number, date, e-mail
    assert re.search(r'<label for="f-title">事由 <span class="req" aria-hidden="true">\*</span></label>', page)
    assert 'id="f-title-help"' in page and "简要说明" in page and 'maxlength="50"' in page
    assert '<textarea id="f-details" name="details"' in page and "可选" in page
    assert 'id="f-people" name="people" type="text" inputmode="numeric"' in page
    assert 'id="f-budget" name="budget" type="text" inputmode="decimal"' in page
    assert 'type="date"' in page and 'type="email"' in page
    # choices: a select for four options, radio buttons for two (enum + enumNames), multi-select, checkboxes
    assert '<select id="f-transport" name="transport" required' in page and "公务车" in page
    assert 'type="radio" id="f-lodging-1" name="lodging" value="yes"' in page and "不需要" in page
    assert '<select id="f-cities" name="cities" multiple' in page
    assert 'type="checkbox" id="f-tags-2" name="tags" value="overseas"' in page
    # boolean, repeating section with a template row for adding more
    assert 'type="checkbox" id="f-promise" name="promise"' in page
    assert 'name="members.0.name"' in page and 'name="members.__index__.name"' in page
    assert "添加一行" in page


def test_bad_values_are_shown_next_to_their_fields_and_input_is_kept(trip_task):
    clerk, task_url = trip_task
    bad = [("title", "出差"), ("details", "第一行\r\n第二行"), ("people", "abc"), ("budget", "-5"),
           ("trip_date", "2026-02-30"), ("contact", "not-an-email"), ("transport", "train"), ("lodging", "no"),
           ("cities.present", "1"), ("cities", "西宁"), ("cities", "海东"), ("tags.present", "1"),
           ("promise.present", "1"), ("members.present", "1"), ("members.0.name", ""),
           ("members.0.phone", "123"), ("members.1.name", "李四"), ("ref", "FORGED")]
    r = clerk.post(task_url, bad)
    assert r.status_code == 422
    page = text(r)
    errors = dict(re.findall(r'<p class="error" id="f-([\w-]+)-error"><span class="visually-hidden">错误： </span>([^<]+)</p>',
                             page))
    assert errors["people"] == "人数的类型不正确（应为 integer）"
    assert errors["budget"] == "预算不能小于 0"
    assert errors["trip_date"] == "出发日期不是有效的日期"
    assert errors["contact"].startswith("联系邮箱")
    assert errors["promise"].startswith("承诺遵守差旅规定")
    assert errors["members-0-name"] == "姓名为必填项"
    assert errors["members-0-phone"] == "电话格式不正确"
    assert set(errors) == {"people", "budget", "trip_date", "contact", "promise", "members-0-name", "members-0-phone"}
    # What was typed or picked is still there.
    assert 'value="abc"' in page and 'value="-5"' in page and 'value="2026-02-30"' in page
    assert "第一行\n第二行</textarea>" in page
    assert re.search(r'<option value="train" selected>', page)
    assert re.search(r'value="no"\s+checked', page)
    assert '<option value="西宁" selected>' in page and '<option value="海东" selected>' in page
    assert 'name="members.0.phone" type="text" value="123"' in page and 'value="李四"' in page
    assert "TRIP-001" in page  # the read-only value, not what the browser claimed

    good = [(k, v) for k, v in bad if k not in ("people", "budget", "trip_date", "contact", "members.0.name",
                                                "members.0.phone")]
    good += [("people", "2"), ("budget", "1200.5"), ("trip_date", "2026-03-02"), ("contact", "a@example.org"),
             ("promise", "on"), ("members.0.name", "张三"), ("members.0.phone", "13800000000")]
    r = clerk.post(task_url, good)
    assert r.status_code == 302, text(r)
    record = text(clerk.get(re.search(r'href="(/requests/\d+)"', text(clerk.get("/requests"))).group(1) + "/record"))
    for shown in ("事由", "出差", "人数", "1200.5", "2026年3月2日", "火车", "不需要", "西宁、海东", "是", "姓名: 张三; 电话: 13800000000"):
        assert shown in record, shown
    assert "FORGED" not in record
