"""The regulation's own procedures are optimised in the studio like any other (issue 14, R-WF-1, R-WF-4)."""
from __future__ import annotations

from tests.service.flows import only_task
from tests.service.studio_helpers import create_model, deploy, save
from tests.service.test_account_application import _decide, _start_and_fill

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
