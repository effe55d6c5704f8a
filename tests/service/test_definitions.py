"""Deploying diagrams through the API (R-WF-1, R-WF-4) and running one that was not in the repo."""
from __future__ import annotations

import io

import pytest

from tests.conftest import FIXTURES
from tests.service.diagrams import script_process

INVALID = FIXTURES / "bpmn" / "invalid"


def _upload(api, *files: tuple[str, bytes], query=None):
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    return api.client.post("/api/v1/process-definitions", data=data, content_type="multipart/form-data",
                           headers=api._headers(), query_string=query or {})


def _fixture(name: str) -> tuple[str, bytes]:
    path = FIXTURES / name
    return path.name, path.read_bytes()


def test_uploaded_diagram_with_lanes_gateway_and_script_runs_end_to_end(login):
    """R-WF-1: a diagram that was not in the repo is deployed, started and completed through the API."""
    admin = login("sysadmin")
    r = _upload(admin, _fixture("bpmn/leave_request.bpmn"), _fixture("forms/leave_request.json"),
                _fixture("forms/leave_review.json"))
    assert r.status_code == 201, r.get_json()
    created = r.get_json()["items"]
    assert [(d["key"], d["version"]) for d in created] == [("leave_request", 1)]
    assert admin.get("/api/v1/process-definitions/leave_request/xml").data.startswith(b"<?xml")

    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "leave_request"}).get_json()
    task = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    r = clerk.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {
        "leave_type": "annual", "start_date": "2026-12-01", "days": 5, "reason": "探亲"}})
    assert r.status_code == 200, r.get_json()
    # The script task computed long_leave = days > 3, so the gateway routed to the head's approval.
    assert r.get_json()["active_elements"] == ["dept_head_approve"]
    assert "compute_leave" in r.get_json()["completed_elements"]

    head = login("office_head")
    task = head.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
    r = head.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}})
    assert r.status_code == 200
    assert r.get_json()["state"] == "completed"
    assert "end_approved" in r.get_json()["completed_elements"]


def test_new_version_leaves_running_instances_on_theirs(login):
    """R-WF-4: deploying again makes version 2; a running version-1 instance finishes on version 1."""
    admin = login("sysadmin")
    v1 = script_process("versioned", "result = 1")
    v2 = script_process("versioned", "result = 2")
    assert _upload(admin, ("versioned.bpmn", v1)).status_code == 201
    old = admin.post("/api/v1/process-instances", json={"process_key": "versioned"}).get_json()
    assert _upload(admin, ("versioned.bpmn", v2)).status_code == 201
    versions = admin.get("/api/v1/process-definitions/versioned").get_json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    new = admin.post("/api/v1/process-instances", json={"process_key": "versioned"}).get_json()
    assert (old["version"], new["version"]) == (1, 2)
    task = admin.get("/api/v1/tasks", query_string={"instance_id": old["id"]}).get_json()["items"][0]
    done = admin.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}).get_json()
    assert done["state"] == "completed" and done["version"] == 1
    old_xml = admin.get("/api/v1/process-definitions/versioned/xml", query_string={"version": 1}).data
    assert b"result = 1" in old_xml


@pytest.mark.parametrize("name, element", [
    ("bad_condition.bpmn", "flow_big"),
    ("bad_script.bpmn", "compute"),
    ("bad_prescript.bpmn", "fill"),
    ("bad_timer.bpmn", "wait_timer"),
    ("bad_timer_iso.bpmn", "wait_timer"),
    ("missing_form.bpmn", "fill_form"),
    ("xsd_violation.bpmn", "review"),
    ("no_start_event.bpmn", "no_start_event"),
])
def test_invalid_diagram_is_refused_naming_the_element(login, name, element):
    """R-WF-1: an invalid diagram gets 422 with the BPMN element id, and nothing is deployed."""
    admin = login("sysadmin")
    r = _upload(admin, (name, (INVALID / name).read_bytes()))
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["code"] == "invalid_diagram"
    assert element in [d["element"] for d in body["details"]], body
    assert element in body["message"] or any(d["element"] == element for d in body["details"])
    keys = {d["key"] for d in admin.get("/api/v1/process-definitions").get_json()["items"]}
    assert not keys - {p.stem for p in (FIXTURES.parent.parent / "process_models").glob("*.bpmn")}


@pytest.mark.parametrize("name", ["not_xml.bpmn", "not_bpmn.bpmn", "xxe.bpmn", "xxe_documentation.bpmn",
                                  "internal_entity.bpmn", "dangling_flow.bpmn", "duplicate_id.bpmn",
                                  "non_executable.bpmn", "service_id_clash.bpmn", "camunda_service_task.bpmn"])
def test_malformed_files_get_a_clear_422_never_a_500(login, name):
    admin = login("sysadmin")
    r = _upload(admin, (name, (INVALID / name).read_bytes()))
    assert r.status_code == 422, r.get_json()
    details = r.get_json()["details"]
    assert details and all(d["message"] and "Traceback" not in d["message"] for d in details)
    assert "root:" not in str(details)  # no /etc/passwd content leaked


def test_import_os_is_refused_at_deploy_time(login):
    """A script that imports a module never reaches an instance."""
    r = _upload(login("sysadmin"), ("escape.bpmn", script_process("escape", "import os\npid = os.getpid()")))
    assert r.status_code == 422
    assert r.get_json()["details"][0]["element"] == "run_script"


@pytest.mark.parametrize("who, status", [("clerk", 403), ("office_head", 403), ("fin_admin", 403)])
def test_only_designers_and_admins_deploy(login, who, status):
    r = _upload(login(who), ("x.bpmn", script_process("x", "a = 1")))
    assert r.status_code == status


def test_anonymous_cannot_deploy(anon):
    r = _upload(anon, ("x.bpmn", script_process("x", "a = 1")))
    assert r.status_code == 401


def test_unsupported_and_empty_uploads(login):
    admin = login("sysadmin")
    assert _upload(admin, ("notes.txt", b"hello")).status_code == 422
    r = admin.client.post("/api/v1/process-definitions", data={}, content_type="multipart/form-data",
                          headers=admin._headers())
    assert r.status_code == 422
    assert r.get_json()["details"][0]["field"] == "files"




def test_a_department_deploys_only_its_own_processes(login):
    """R-WF-1 / R-ACC-3: a designer deploys new processes and new versions of their department's
    own; a new version of a built-in procedure needs the platform management department."""
    from tests.conftest import ROOT

    designer = login("office_admin")  # designer group, OFFICE
    builtin = ("feedback.bpmn", (ROOT / "process_models" / "feedback.bpmn").read_bytes())
    r = _upload(designer, builtin)
    assert r.status_code == 403 and "feedback" in r.get_json()["message"]
    assert _upload(login("platform"), builtin).status_code == 201
    own = ("own.bpmn", script_process("office_own", "x = 1"))
    assert _upload(designer, own).status_code == 201
    assert _upload(designer, own).status_code == 201  # version 2 of the department's own process
