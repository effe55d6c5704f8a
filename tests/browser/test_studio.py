"""The designer's studio in a real browser (issue 7; R-WF-1, R-WF-4).

office_admin (a designer of OFFICE) creates a process model, uploads a diagram drawn in another
modeler, adds the first user task with the context pad (appends a task, names it on the canvas,
changes it into a user task), gives it its performer and form in the properties panel, connects it
to the gateway on the canvas, writes the form in the form editor, saves, sees the server's problem
for a gateway without conditions highlighted, fixes it in the panel, tries the draft with a scenario and deploys it. A
clerk starts version 1; the designer changes and deploys version 2; the clerk starts version 2
while the version-1 instance runs to its end on version 1. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.browser.test_workspace import Person, browser, server  # noqa: F401 - fixtures
from tests.conftest import PASSWORD

KEY = "car_request"

# As another modeler would export it: the start event leads nowhere yet (the designer adds the
# first user task in the browser); the gateway's flows have no conditions.
DIAGRAM = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
  id="defs_car" targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" exporterVersion="5.31.0">
  <bpmn:process id="{KEY}" name="用车申请" isExecutable="true">
    <bpmn:startEvent id="start" name="提出用车" />
    <bpmn:exclusiveGateway id="decide" name="天数？"><bpmn:outgoing>to_ok</bpmn:outgoing><bpmn:outgoing>to_redo</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:userTask id="ok" name="派车">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>请安排车辆</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>to_ok</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="redo" name="长途审批">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>长途用车需审批</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>to_redo</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end" name="结束"><bpmn:incoming>f3</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="to_ok" name="短途" sourceRef="decide" targetRef="ok" />
    <bpmn:sequenceFlow id="to_redo" name="长途" sourceRef="decide" targetRef="redo" />
    <bpmn:sequenceFlow id="f3" sourceRef="ok" targetRef="end" />
    <bpmn:sequenceFlow id="f4" sourceRef="redo" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram_car">
    <bpmndi:BPMNPlane id="plane_car" bpmnElement="{KEY}">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="152" y="212" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="decide_di" bpmnElement="decide" isMarkerVisible="true"><dc:Bounds x="415" y="205" width="50" height="50" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="ok_di" bpmnElement="ok"><dc:Bounds x="540" y="90" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="redo_di" bpmnElement="redo"><dc:Bounds x="540" y="290" width="100" height="80" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="722" y="212" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="to_ok_di" bpmnElement="to_ok"><di:waypoint x="440" y="205" /><di:waypoint x="440" y="130" /><di:waypoint x="540" y="130" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="to_redo_di" bpmnElement="to_redo"><di:waypoint x="440" y="255" /><di:waypoint x="440" y="330" /><di:waypoint x="540" y="330" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f3_di" bpmnElement="f3"><di:waypoint x="640" y="130" /><di:waypoint x="740" y="130" /><di:waypoint x="740" y="212" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f4_di" bpmnElement="f4"><di:waypoint x="640" y="330" /><di:waypoint x="740" y="330" /><di:waypoint x="740" y="248" /></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""

FORM = {"type": "object", "required": ["plate", "days"], "properties": {
    "plate": {"type": "string", "title": "车牌号"}, "days": {"type": "integer", "title": "用车天数", "minimum": 1}}}


def _xml(page) -> str:
    return page.evaluate("async () => (await window.inklessModeler.saveXML()).xml")


def _select(page, element_id: str):
    """Select an element as a click on it would (connections are thin, so they are selected by id)."""
    page.evaluate("id => { const m = window.inklessModeler; m.get('selection').select(m.get('elementRegistry').get(id)); }",
                  element_id)


def _panel_field(page, group: str, entry: str):
    field = page.locator(f"#bio-properties-panel-{entry}")
    if not field.is_visible():
        page.locator(f'[data-group-id="group-{group}"] .bio-properties-panel-group-header').click()
    return field


def _wait_for_status(page, pattern: str):
    page.wait_for_function("p => new RegExp(p).test(document.getElementById('status').textContent)", arg=pattern)


def test_designer_builds_checks_tries_and_deploys_a_process(server, browser, tmp_path):  # noqa: F811
    designer = Person(browser, server, "office_admin", viewport={"width": 1400, "height": 1000})
    designer.sign_in("office_admin")
    designer.page.wait_for_url(server + "/")
    designer.page.get_by_role("link", name="流程设计").click()
    designer.shot("studio-01-catalogue")
    designer.check_accessibility("the studio catalogue")

    # A new model, then the diagram from another modeler, uploaded into the modeler.
    page = designer.page
    page.get_by_label("标识").fill(KEY)
    page.get_by_label("名称", exact=True).fill("用车申请")
    page.get_by_label("类别").fill("行政")
    page.get_by_role("button", name="创建并打开建模器").click()
    page.wait_for_url(server + f"/studio/{KEY}")
    page.wait_for_selector("#studio[data-ready=true]")
    upload = tmp_path / "car_request.bpmn"
    upload.write_text(DIAGRAM, encoding="utf-8")
    page.set_input_files("#upload", str(upload))
    _wait_for_status(page, "流程图已导入")
    designer.shot("studio-02-imported")

    # Real edits through the UI: a task appended to the start event with the context pad, named on
    # the canvas and turned into a user task with the replace menu; performer and form in the
    # properties panel, a connection drawn with the context pad, and keyboard undo/redo.
    page.locator('.djs-element[data-element-id="start"]').click()
    page.locator('.djs-context-pad [data-action="append.append-task"]').click()
    page.locator(".djs-direct-editing-parent").wait_for()  # the new task's name, edited in place
    page.keyboard.type("填写用车单")
    page.keyboard.press("Enter")
    page.locator(".djs-direct-editing-parent").wait_for(state="hidden")
    page.locator('.djs-context-pad [data-action="replace"]').click()
    page.locator('.djs-popup [data-id="replace-with-user-task"]').click()
    # The new user task stays selected, so the panel below shows its properties.
    fill_id = page.evaluate("() => window.inklessModeler.get('selection').get()[0].id")
    assert page.evaluate("""id => { const e = window.inklessModeler.get('elementRegistry').get(id);
        return [e.type, e.businessObject.name, e.incoming.map(f => f.source.id)]; }""", fill_id) == [
        "bpmn:UserTask", "填写用车单", ["start"]]
    # Performers picked by name from the model's department and the platform (issue 14).
    _panel_field(page, "inkless-task", "inkless-performers-pick").select_option(label="发起人")
    _panel_field(page, "inkless-task", "inkless-performers")
    page.wait_for_function("() => document.getElementById('bio-properties-panel-inkless-performers').value === 'initiator'")
    _panel_field(page, "inkless-task", "inkless-form").fill("car.json")
    _panel_field(page, "inkless-task", "inkless-instructions").fill("请填写车牌号和天数")
    page.wait_for_function("() => document.querySelector('#bio-properties-panel-inkless-form').value === 'car.json'")
    page.wait_for_timeout(600)  # the panel's input debounce
    added = re.search(rf'<bpmn:userTask id="{fill_id}" name="填写用车单">.*?</bpmn:userTask>', _xml(page), re.S)[0]
    assert 'name="performers" value="initiator"' in added and 'name="formJsonSchemaFilename" value="car.json"' in added
    _select(page, fill_id)
    page.locator('.djs-context-pad [data-action="connect"]').click()
    page.locator('.djs-element[data-element-id="decide"]').click()
    assert re.search(rf'sourceRef="{fill_id}" targetRef="decide"', _xml(page))
    assert re.search(rf'sourceRef="start" targetRef="{fill_id}"', _xml(page))
    page.locator("#canvas svg[data-element-id]").focus()
    page.keyboard.press("Control+z")
    assert not re.search(rf'sourceRef="{fill_id}" targetRef="decide"', _xml(page))
    page.keyboard.press("Control+y")
    assert re.search(rf'sourceRef="{fill_id}" targetRef="decide"', _xml(page))
    page.get_by_role("button", name=re.compile("^保存草稿")).click()
    _wait_for_status(page, "已保存")
    designer.shot("studio-03-edited")

    # The form, in the form editor, previewed by the server's renderer.
    page.reload()  # the form list is drawn by the server from the saved draft
    page.get_by_role("link", name="car.json").click()
    page.wait_for_selector("#form-editor[data-ready=true]")
    page.locator("#schema").fill(json.dumps(FORM, ensure_ascii=False, indent=2))
    page.wait_for_selector("#preview >> text=车牌号")
    assert page.locator("#preview input[name=days]").count() == 1
    designer.shot("studio-04-form-editor")
    designer.check_accessibility("the form editor")
    page.get_by_role("button", name="保存草稿").click()
    page.wait_for_function("() => /已保存/.test(document.getElementById('form-status').textContent)")
    page.go_back()
    page.reload()
    page.wait_for_selector("#studio[data-ready=true]")

    # The server's check: the gateway without conditions is named and highlighted.
    page.get_by_role("button", name="检查").click()
    problem = page.locator('#problems button[data-element="decide"]')
    problem.wait_for()
    assert "to_ok" in problem.inner_text()
    assert "has-problem" in page.locator('.djs-element[data-element-id="decide"]').get_attribute("class")
    problem.click()
    assert page.evaluate("() => window.inklessModeler.get('selection').get().map(e => e.id)") == ["decide"]
    designer.shot("studio-05-problem-highlighted")

    # Fixed in the panel: a condition on each outgoing flow.
    for flow, condition in (("to_ok", "days <= 3"), ("to_redo", "days > 3")):
        _select(page, flow)
        _panel_field(page, "inkless-condition", "inkless-condition-text").fill(condition)
        page.wait_for_timeout(600)
    page.get_by_role("button", name="检查").click()
    _wait_for_status(page, "未发现问题")
    assert "has-problem" not in page.locator('.djs-element[data-element-id="decide"]').get_attribute("class")

    # Try it with a scenario: the path is shown on the diagram; nothing is stored.
    scenario = {"name": "短途", "start": {}, "steps": [{"task": fill_id, "data": {"plate": "青A12345", "days": 2}},
                                                      {"task": "ok", "data": {}}],
                "expect": {"path": [fill_id, "decide", "ok"], "end": "end"}}
    page.locator("#scenario").fill(json.dumps(scenario, ensure_ascii=False))
    page.get_by_role("button", name="运行").click()
    page.wait_for_function("() => document.getElementById('try-outcome').dataset.ok === 'true'")
    assert f"{fill_id} → decide → ok" in page.locator("#try-path").inner_text()
    assert "is-completed" in page.locator('.djs-element[data-element-id="ok"]').get_attribute("class")
    page.get_by_role("button", name="保存场景").click()
    _wait_for_status(page, "已保存")
    designer.shot("studio-06-tried")

    # Stepping by hand: start empty, then fill the waiting task's own form (the staff renderer's
    # fields, checked by the server as a task page is) - no JSON typed.
    page.locator("#scenario").fill('{"start": {}, "steps": []}')
    page.get_by_role("button", name="运行").click()
    page.get_by_role("button", name="办理“填写用车单”").wait_for()
    sample = page.get_by_role("form", name=re.compile("填写用车单：示例数据"))
    sample.locator("input[name=days]").wait_for()
    sample.get_by_label("车牌号").fill("青A00001")
    page.get_by_role("button", name="办理“填写用车单”").click()
    sample.locator("#f-days-error").wait_for()  # days is required: named on the field, no step taken
    _wait_for_status(page, "请更正标出的字段")
    assert sample.get_by_label("车牌号").input_value() == "青A00001"
    assert json.loads(page.locator("#scenario").input_value())["steps"] == []
    designer.check_accessibility("try it with a task's form")
    sample.get_by_label("用车天数").fill("5")
    page.get_by_role("button", name="办理“填写用车单”").click()
    page.get_by_role("button", name="办理“长途审批”").wait_for()  # 5 days: the long-trip branch
    assert "is-current" in page.locator('.djs-element[data-element-id="redo"]').get_attribute("class")
    assert json.loads(page.locator("#scenario").input_value())["steps"] == [
        {"task": fill_id, "data": {"plate": "青A00001", "days": 5}}]
    designer.shot("studio-06b-stepping")

    page.get_by_role("button", name="部署为新版本").click()
    _wait_for_status(page, "已部署为版本 1")
    designer.shot("studio-07-deployed")
    designer.check_accessibility("the modeler")

    # A clerk starts version 1 and fills in the first task.
    clerk_token = server_token(server, "clerk")
    first = _api(server, "POST", "/api/v1/process-instances", clerk_token, {"process_key": KEY})
    assert first["version"] == 1

    # Version 2: the dispatch task gets a due date in the panel.
    # Durations in words: typed ("1 天") or picked ("2 天"), stored as ISO 8601 (issue 14).
    _select(page, "ok")
    _panel_field(page, "inkless-task", "inkless-due").fill("1 天")
    page.wait_for_timeout(600)
    assert 'name="due" value="&#34;P1D&#34;"' in _xml(page) or 'name="due" value="&quot;P1D&quot;"' in _xml(page)
    _select(page, "redo")
    _panel_field(page, "inkless-task", "inkless-due-pick").select_option(label="2 天")
    page.wait_for_timeout(300)
    assert re.search(r'name="due" value="(&#34;|&quot;)P2D(&#34;|&quot;)"', _xml(page))
    assert "2 天" in page.locator('[data-entry-id="inkless-due"]').inner_text()
    _panel_field(page, "inkless-task", "inkless-due").fill("4 小时")
    page.wait_for_timeout(600)
    assert re.search(r'name="due" value="(&#34;|&quot;)PT4H(&#34;|&quot;)"', _xml(page))
    picker = _panel_field(page, "inkless-task", "inkless-performers-pick")
    assert picker.locator("option", has_text="功能组：").count() >= 1
    assert picker.locator("option", has_text="fin_admin").count() == 0  # another department's people
    picker.select_option(value="user:clerk")
    page.wait_for_timeout(300)
    assert 'name="performers" value="user:clerk"' in _xml(page)
    designer.shot("studio-06c-pickers")
    page.get_by_role("button", name="部署为新版本").click()
    _wait_for_status(page, "已部署为版本 2")
    second = _api(server, "POST", "/api/v1/process-instances", clerk_token, {"process_key": KEY})
    assert second["version"] == 2

    # The version-1 instance runs to its end on version 1.
    for data in ({"plate": "青A12345", "days": 2}, {}):
        task = _api(server, "GET", f"/api/v1/tasks?instance_id={first['id']}", clerk_token)["items"][0]
        _api(server, "POST", f"/api/v1/tasks/{task['id']}/complete", clerk_token, {"data": data})
    done = _api(server, "GET", f"/api/v1/process-instances/{first['id']}", clerk_token)
    assert (done["state"], done["version"]) == ("completed", 1)

    # The package round trip through the page: download, change the draft, import it back.
    package = page.request.get(server + f"/api/v1/studio/{KEY}/package")
    assert package.ok and package.headers["content-type"] == "application/zip"
    (tmp_path / "car.zip").write_bytes(package.body())
    _select(page, "redo")
    page.locator("#canvas svg[data-element-id]").focus()
    page.keyboard.press("Delete")
    assert 'id="redo"' not in _xml(page)
    page.get_by_role("button", name=re.compile("^保存草稿")).click()
    _wait_for_status(page, "已保存")
    with page.expect_navigation():  # the page reloads with the imported draft
        page.set_input_files("#package", str(tmp_path / "car.zip"))
    page.wait_for_selector("#studio[data-ready=true]")
    assert page.locator('.djs-element[data-element-id="redo"]').count() == 1
    assert page.locator("#scenario-name option", has_text="短途").count() == 1

    designer.goto(f"/studio/{KEY}/versions?from=1&to=2")
    changed = page.locator(".diff .changed").first.inner_text()
    assert "ok" in changed and "派车" in changed
    designer.shot("studio-08-versions-diff")
    designer.check_accessibility("the versions page")
    assert not designer.problems, designer.problems


def server_token(base: str, username: str) -> str:
    return _api(base, "POST", "/api/v1/auth/token", None, {"username": username, "password": PASSWORD})["access_token"]


def _api(base: str, method: str, path: str, token: str | None, body: dict | None = None) -> dict:
    import urllib.request

    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


PANEL_DIAGRAM = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="defs_panel" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:message id="msg_signed" name="signed" />
  <bpmn:process id="{KEY}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="calc" name="计算" />
    <bpmn:serviceTask id="make" name="开户" />
    <bpmn:intermediateCatchEvent id="wait" name="等待签署"><bpmn:messageEventDefinition id="med" messageRef="msg_signed" /></bpmn:intermediateCatchEvent>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p" bpmnElement="{KEY}">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="152" y="102" width="36" height="36" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="calc_di" bpmnElement="calc"><dc:Bounds x="240" y="80" width="100" height="80" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="make_di" bpmnElement="make"><dc:Bounds x="400" y="80" width="100" height="80" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="wait_di" bpmnElement="wait"><dc:Bounds x="560" y="102" width="36" height="36" /></bpmndi:BPMNShape>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def test_properties_panel_writes_the_extensions_inkless_reads(server, browser, tmp_path):  # noqa: F811
    """Script text, service operator, message variable: written where engine/loader.py reads them."""
    designer = Person(browser, server, "office_admin", viewport={"width": 1400, "height": 1000})
    designer.sign_in("office_admin")
    designer.page.wait_for_url(server + "/")
    page = designer.page
    token = server_token(server, "office_admin")
    _api(server, "POST", "/api/v1/studio", token, {"key": KEY, "name": "面板"})
    designer.goto(f"/studio/{KEY}")
    page.wait_for_selector("#studio[data-ready=true]")
    (tmp_path / "panel.bpmn").write_text(PANEL_DIAGRAM, encoding="utf-8")
    page.set_input_files("#upload", str(tmp_path / "panel.bpmn"))
    _wait_for_status(page, "流程图已导入")
    for element, group, entry, value in (
            ("calc", "inkless-script", "inkless-script-text", "total = 1 + 2"),
            ("make", "inkless-service", "inkless-service-id", "create_account"),
            ("make", "inkless-service", "inkless-service-result", "account"),
            ("wait", "inkless-message", "inkless-message-data", "received"),
            ("calc", "inkless-scripts", "inkless-post-script", "done = True")):
        _select(page, element)
        _panel_field(page, group, entry).fill(value)
        page.wait_for_timeout(600)
    xml = _xml(page)
    assert re.search(r"<bpmn:script>total = 1 \+ 2</bpmn:script>", xml)
    assert re.search(r'<spiffworkflow:serviceTaskOperator id="create_account" resultVariable="account"\s*/>', xml)
    assert re.search(r'<bpmn:messageEventDefinition id="med" messageRef="msg_signed">\s*<bpmn:extensionElements>\s*'
                     r"<spiffworkflow:messageVariable>received</spiffworkflow:messageVariable>", xml)
    assert "<spiffworkflow:postScript>done = True</spiffworkflow:postScript>" in xml
    page.locator("#canvas svg[data-element-id]").focus()
    page.keyboard.press("Control+z")  # the last edit, undone as one step
    assert "postScript" not in _xml(page)
    designer.shot("studio-09-panel-extensions")
    assert not designer.problems, designer.problems


def test_a_new_model_starts_valid_and_unsaved_edits_are_not_lost_silently(server, browser, tmp_path):  # noqa: F811
    """Issue 14, R-WF-1: a new model opens with no lint error and passes the server's check; an edit
    not yet saved makes the browser ask before the page is left, and once saved it lets go."""
    designer = Person(browser, server, "office_admin", viewport={"width": 1400, "height": 1000})
    designer.sign_in("office_admin")
    designer.page.wait_for_url(server + "/")
    page = designer.page
    designer.goto("/studio")
    page.get_by_label("标识").fill("fresh_model")
    page.get_by_label("名称", exact=True).fill("新流程")
    page.get_by_role("button", name="创建并打开建模器").click()
    page.wait_for_url(server + "/studio/fresh_model")
    page.wait_for_selector("#studio[data-ready=true]")
    lint = page.locator(".bjsl-button")
    page.wait_for_function("() => /没有问题|错误|警告/.test(document.querySelector('.bjsl-button').textContent)")
    assert lint.inner_text().strip() == "没有问题", lint.inner_text()
    assert "bjsl-button-error" not in lint.get_attribute("class")
    assert page.evaluate("""() => ['start', 'end'].map(
        id => window.inklessModeler.get('elementRegistry').get(id).businessObject.name)""") == ["开始", "结束"]
    page.get_by_role("button", name="检查").click()
    _wait_for_status(page, "未发现问题")
    designer.shot("studio-10-new-model")

    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    # Opened and checked, nothing changed: leaving asks nothing.
    page.get_by_role("link", name="流程设计", exact=True).first.click()
    page.wait_for_url(server + "/studio")
    assert asked == []

    # An edit made on the canvas, then a link clicked: the browser asks, and staying keeps the edit.
    designer.goto("/studio/fresh_model")
    page.wait_for_selector("#studio[data-ready=true]")
    page.locator('.djs-element[data-element-id="start"]').click()
    page.locator('.djs-context-pad [data-action="append.append-task"]').click()
    page.keyboard.type("登记")
    page.keyboard.press("Enter")
    with page.expect_event("dialog"):
        page.get_by_role("link", name="流程设计", exact=True).first.click()
    assert asked == ["beforeunload"]
    assert page.url == server + "/studio/fresh_model" and "登记" in _xml(page)

    # A diagram uploaded from another modeler is on screen only: leaving asks too.
    upload = tmp_path / "car_request.bpmn"
    upload.write_text(DIAGRAM.replace(f'id="{KEY}"', 'id="fresh_model"').replace(f'bpmnElement="{KEY}"',
                                                                               'bpmnElement="fresh_model"'))
    page.set_input_files("#upload", str(upload))
    _wait_for_status(page, "流程图已导入")
    with page.expect_event("dialog"):
        page.get_by_role("link", name="流程设计", exact=True).first.click()
    assert asked == ["beforeunload", "beforeunload"]

    # Saved: leaving no longer asks.
    page.get_by_role("button", name=re.compile("^保存草稿")).click()
    _wait_for_status(page, "已保存")
    page.get_by_role("link", name="流程设计", exact=True).first.click()
    page.wait_for_url(server + "/studio")
    assert asked == ["beforeunload", "beforeunload"]
    assert not designer.problems, designer.problems
