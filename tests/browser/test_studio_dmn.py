"""Decision tables edited in the browser with dmn-js beside the BPMN modeler (issue 14, R-WF-1).

office_admin's leave model decides the days of leave from its kind with the table leave_days.dmn.
In Chromium the designer opens the table from the modeler page, changes a rule's days in its cell,
adds a rule with the "+" row and types its cells, and saves; the draft holds the table, deployed
it decides: a sick leave gets the days the designer typed.
"""
from __future__ import annotations

import pytest

from tests.browser.test_studio import _api, server_token
from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures

KEY = "leave_days_model"

DIAGRAM = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
  id="defs_leave" targetNamespace="http://inkless">
  <bpmn:process id="{KEY}" name="请假天数" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="pick" name="选择假别"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>kind = "病假"</bpmn:script></bpmn:scriptTask>
    <bpmn:businessRuleTask id="decide" name="核定天数">
      <bpmn:extensionElements><spiffworkflow:calledDecisionId>leave_days</spiffworkflow:calledDecisionId></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:businessRuleTask>
    <bpmn:userTask id="confirm" name="确认天数">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>核定天数:{{{{ days }}}}</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pick" />
    <bpmn:sequenceFlow id="f2" sourceRef="pick" targetRef="decide" />
    <bpmn:sequenceFlow id="f3" sourceRef="decide" targetRef="confirm" />
    <bpmn:sequenceFlow id="f4" sourceRef="confirm" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram_leave">
    <bpmndi:BPMNPlane id="plane_leave" bpmnElement="{KEY}">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="152" y="102" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="pick_di" bpmnElement="pick"><dc:Bounds x="240" y="80" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="decide_di" bpmnElement="decide"><dc:Bounds x="390" y="80" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="confirm_di" bpmnElement="confirm"><dc:Bounds x="540" y="80" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="692" y="102" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="188" y="120" /><di:waypoint x="240" y="120" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="340" y="120" /><di:waypoint x="390" y="120" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f3_di" bpmnElement="f3"><di:waypoint x="490" y="120" /><di:waypoint x="540" y="120" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f4_di" bpmnElement="f4"><di:waypoint x="640" y="120" /><di:waypoint x="692" y="120" /></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""

TABLE = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="definitions_leave_days" name="请假天数" namespace="http://inkless/leave">
  <decision id="leave_days" name="核定请假天数">
    <decisionTable id="table_leave_days" hitPolicy="UNIQUE">
      <input id="input_kind" label="假别"><inputExpression id="input_kind_expression" typeRef="string"><text>kind</text></inputExpression></input>
      <output id="output_days" label="天数" name="days" typeRef="number" />
      <rule id="rule_annual"><inputEntry id="rule_annual_kind"><text>"年假"</text></inputEntry><outputEntry id="rule_annual_days"><text>5</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""


def test_a_designer_edits_a_decision_table_in_the_browser_and_it_decides(server, browser):  # noqa: F811
    token = server_token(server, "office_admin")
    model = _api(server, "POST", "/api/v1/studio", token, {"key": KEY, "name": "请假天数"})
    _api(server, "PUT", f"/api/v1/studio/{KEY}/draft", token,
         {"version": model["draft"]["version"], "xml": DIAGRAM, "dmn": {"leave_days.dmn": TABLE}})

    designer = Person(browser, server, "office_admin", viewport={"width": 1400, "height": 1000})
    designer.sign_in("office_admin")
    designer.page.wait_for_url(server + "/")
    page = designer.page
    designer.goto(f"/studio/{KEY}")
    page.get_by_role("link", name="leave_days.dmn").click()
    page.wait_for_url(server + f"/studio/{KEY}/decisions/leave_days.dmn")
    page.wait_for_selector("#dmn-editor[data-ready=true]")
    page.wait_for_selector(".tjs-table")
    assert page.locator(".tjs-table").get_by_text('"年假"').is_visible()
    designer.shot("studio-dmn-01-table")

    # The annual leave's 5 days become 7, typed in its cell.
    days = page.locator('td[data-element-id="rule_annual_days"] .content-editable')
    days.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("7")
    # A second rule from the "+" row: sick leave, 3 days.
    page.locator("td.add-rule-add").click()
    rows = page.locator(".tjs-table tbody tr")
    assert rows.count() == 2
    rows.nth(1).locator("td.input-cell").click()
    page.keyboard.type('"病假"')
    rows.nth(1).locator("td.output-cell").click()
    page.keyboard.type("3")
    designer.shot("studio-dmn-02-edited")
    page.get_by_role("button", name="保存草稿").click()
    page.wait_for_function("() => document.getElementById('dmn-status').dataset.kind === 'ok'")
    assert designer.problems == [], '\n'.join(designer.problems)

    draft = _api(server, "GET", f"/api/v1/studio/{KEY}", token)["draft"]
    saved = draft["dmn"]["leave_days.dmn"]
    assert "病假" in saved and ">7<" in saved.replace(" ", "")
    _api(server, "POST", f"/api/v1/studio/{KEY}/deploy", token, {"version": draft["version"]})
    instance = _api(server, "POST", "/api/v1/process-instances", token, {"process_key": KEY})
    tasks = _api(server, "GET", f"/api/v1/tasks?instance_id={instance['id']}", token)["items"]
    detail = _api(server, "GET", f"/api/v1/tasks/{tasks[0]['id']}", token)
    assert "核定天数:3" in detail["instructions"]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
