"""The regulation's own procedures are optimised in the studio like any other (issue 14, R-WF-1, R-WF-4)."""
from __future__ import annotations

from tests.service.flows import only_task
from tests.service.studio_helpers import create_model, deploy, save
from tests.service.test_account_application import _decide, _start_and_fill
from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

NEW_STEP = ('<bpmn:userTask id="archive_record" name="归档登记"><bpmn:extensionElements>'
            '<spiffworkflow:instructionsForEndUser>请将开通结果归档</spiffworkflow:instructionsForEndUser>'
            '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" />'
            '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>\n'
            '<bpmn:sequenceFlow id="flow_archive_end" sourceRef="archive_record" targetRef="end_approved" />\n')


def _with_archive_step(xml: str) -> str:
    old = '<bpmn:sequenceFlow id="flow_create_end" sourceRef="create_account_task" targetRef="end_approved" />'
    assert old in xml
    changed = xml.replace(old, old.replace('targetRef="end_approved"', 'targetRef="archive_record"'))
    return changed.replace("</bpmn:process>", NEW_STEP + "</bpmn:process>", 1)


def test_the_account_application_gets_a_new_step_in_the_studio_and_runs_as_v2(login):
    """Opened from the catalogue, changed, deployed as version 2: a version-1 request finishes on
    version 1, a new one runs version 2 and waits at the new step (R-WF-1, R-WF-4)."""
    old_instance = _start_and_fill(login)  # started on version 1

    sysadmin = login("sysadmin")
    model = create_model(sysadmin, "account_application", department="PLATFORM")
    assert model["deployed_versions"] == [1]
    draft = model["draft"]
    saved = save(sysadmin, "account_application", draft["version"], xml=_with_archive_step(draft["xml"]))
    deployed = deploy(sysadmin, "account_application", saved["version"])
    assert deployed["version"] == 2

    _decide(login, "office_head", old_instance, "dept_head_review", "approve")
    finished = _decide(login, "platform", old_instance, "platform_review", "approve")
    assert finished["state"] == "completed" and "archive_record" not in finished["completed_elements"]

    new_instance = _start_and_fill(login, data={**_application(), "username": "newcomer2"})
    api = login("office_admin")
    assert api.get(f"/api/v1/process-instances/{new_instance}").get_json()["version"] == 2
    _decide(login, "office_head", new_instance, "dept_head_review", "approve")
    waiting = _decide(login, "platform", new_instance, "platform_review", "approve")
    assert waiting["state"] == "running" and waiting["active_elements"] == ["archive_record"]
    task = only_task(api, instance_id=new_instance)
    done = api.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}).get_json()
    assert done["state"] == "completed" and "end_approved" in done["completed_elements"]


def _application() -> dict:
    from tests.service.test_account_application import APPLICATION

    return dict(APPLICATION)


def test_a_decision_table_is_changed_in_the_studio_and_decides_the_next_instance(app, login):
    """Issue 14, R-WF-1, R-SEC-7: the permission review opened in the studio carries its decision
    table; a table the engine cannot read is refused on save, naming the file and the element,
    and the draft keeps its last good table; a changed table saved and deployed as version 2
    decides who reviews in the next review (every grant to the platform)."""
    from tests.service.test_permission_review import _add_groups, _start

    sysadmin = login("sysadmin")
    model = create_model(sysadmin, "permission_review", department="PLATFORM")
    tables = model["draft"]["dmn"]
    assert set(tables) == {"grant_reviewer.dmn"}
    table = tables["grant_reviewer.dmn"]

    version = model["draft"]["version"]
    refused = save(sysadmin, "permission_review", version, 422,
                   dmn={"grant_reviewer.dmn": table.replace("</decisionTable>", "", 1)})
    assert refused["details"][0]["file"] == "grant_reviewer.dmn"
    no_output = save(sysadmin, "permission_review", version, 422,
                     dmn={"grant_reviewer.dmn": table.replace('hitPolicy="UNIQUE"', 'hitPolicy="NO_SUCH_POLICY"')})
    assert no_output["details"][0]["file"] == "grant_reviewer.dmn", no_output
    kept = sysadmin.get("/api/v1/studio/permission_review").get_json()["draft"]
    assert kept["dmn"]["grant_reviewer.dmn"] == table and kept["version"] == model["draft"]["version"]

    changed = table.replace('<outputEntry id="rule_department_reviewer"><text>"department"</text>',
                            '<outputEntry id="rule_department_reviewer"><text>"platform"</text>')
    assert changed != table
    saved = save(sysadmin, "permission_review", kept["version"], dmn={"grant_reviewer.dmn": changed})
    assert deploy(sysadmin, "permission_review", saved["version"])["version"] == 2

    _add_groups(app, {"clerk": "designer"})
    after = _start(login)
    assert "review_department" not in after["active_elements"]
    platform = login("platform")
    task = only_task(platform, instance_id=after["id"])
    listed = {(g["username"], g["grant"]) for g in platform.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["grants"]}
    assert ("clerk", "group:designer") in listed


def test_the_decision_table_editor_page_opens_a_models_table(login, browser):  # noqa: F811
    """Issue 14: the modeler page lists the model's decision tables and links the dmn-js editor
    (read only for a designer of another department); a name that is not a .dmn file is refused."""
    create_model(login("sysadmin"), "permission_review", department="PLATFORM")
    office = browser("office_admin")
    page = office.get("/studio/permission_review")
    assert page.status_code == 200
    assert 'href="/studio/permission_review/decisions/grant_reviewer.dmn"' in page.get_data(as_text=True)
    editor = office.get("/studio/permission_review/decisions/grant_reviewer.dmn")
    assert editor.status_code == 200
    html = editor.get_data(as_text=True)
    assert 'data-file="grant_reviewer.dmn"' in html and "build/dmn-editor.js" in html
    assert 'data-editable="false"' in html
    new = office.get("/studio/permission_review/decisions", query_string={"name": "leave_days"})
    assert new.status_code == 302 and new.headers["Location"].endswith("/studio/permission_review/decisions/leave_days.dmn")
    assert office.get("/studio/permission_review/decisions/leave.xml").status_code == 422
