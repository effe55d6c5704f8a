"""Services carry their authority (issue 13; R-ACC-2, R-ACC-3, R-SEC-7, R-DOC-4, R-WF-1).

A department's designer must not reach, through a service task, what they could not do by hand:
create a FIN department administrator without the two approvals, publish another department's
document to everyone, hand another head's documents to someone else. Each escalation is refused
at deploy (422 naming the service task and the service, on every deploy path) and at run time for
a definition already stored before these checks (an incident naming the service; nothing done).
"""
from __future__ import annotations

import io
import json
import zipfile
from xml.sax.saxutils import quoteattr

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from service.cli import main as cli
from service.documents.models import Document
from service.models import AuditEvent, Deployment, DeploymentFile, ProcessDefinition, User
from tests.service.documents_helpers import set_clearance, uploaded
from tests.service.flows import complete, only_task
from tests.service.studio_helpers import HEAD, create_model, save

GROUPS = ["supervisor", "confidentiality_officer", "designer", "inspector", "dept_head"]


def _db(app):
    return app.extensions["inkless.db"]()


def _params(params: dict[str, str]) -> str:
    return "".join(f'<spiffworkflow:parameter id="{name}" type="any" value={quoteattr(value)} />'
                   for name, value in params.items())


def _service_task(element: str, service: str, params: dict[str, str], result: str = "result") -> str:
    return (f'<bpmn:serviceTask id="{element}" name="调用服务"><bpmn:extensionElements>'
            f'<spiffworkflow:serviceTaskOperator id="{service}" resultVariable="{result}">'
            f'<spiffworkflow:parameters>{_params(params)}</spiffworkflow:parameters>'
            '</spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>\n')


def _approval(element: str, performers: str) -> str:
    return (f'<bpmn:userTask id="{element}" name="审核"><bpmn:extensionElements>'
            '<spiffworkflow:instructionsForEndUser>请审核</spiffworkflow:instructionsForEndUser>'
            '<spiffworkflow:properties><spiffworkflow:property name="approval" value="true" />'
            f'<spiffworkflow:property name="performers" value="{performers}" />'
            '<spiffworkflow:property name="formJsonSchemaFilename" value="approval_review.json" />'
            '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>\n')


def steps(key: str, *elements: tuple[str, str]) -> str:
    """start → the elements in order (their ids, their XML) → end."""
    ids = ["start", *[e[0] for e in elements], "end"]
    body = '<bpmn:startEvent id="start" />\n' + "".join(e[1] for e in elements) + '<bpmn:endEvent id="end" />\n'
    body += "".join(f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}" />\n'
                    for a, b in zip(ids, ids[1:], strict=False))
    return (HEAD + f'<bpmn:process id="{key}" name="测试流程" isExecutable="true">\n{body}</bpmn:process>\n'
            '</bpmn:definitions>\n')


def diagram(key: str, element: str, service: str, params: dict[str, str],
            approvals: tuple[tuple[str, str], ...] = ()) -> str:
    """start → the approvals (user tasks: element, performers) → serviceTask(service) → end."""
    return steps(key, *[(a[0], _approval(*a)) for a in approvals],
                 (element, _service_task(element, service, params)))


MALLORY = {"username": "'mallory'", "full_name": "'马洛里'", "department": "'FIN'", "roles": "['dept_admin']",
           "groups": repr(GROUPS)}


def mallory(key: str = "open_account") -> str:
    return diagram(key, "make_account", "create_account", MALLORY)


def _deploy(api, name: str, xml: str, **query):
    return api.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(xml.encode()), name)]},
                           content_type="multipart/form-data", headers=api._headers(), query_string=query)


def _refusal(r, element: str, service: str) -> dict:
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["code"] == "invalid_diagram"
    (problem,) = [d for d in body["details"] if d["element"] == element]
    assert service in problem["message"] and element in problem["message"]
    assert element in body["message"] and service in body["message"]
    return problem


def _fin_document(login) -> dict:
    """An internal (内部) document of the finance department, owned by its head."""
    return uploaded(login("fin_head"), b"FIN internal budget", title="财务内部预算")


def _publish(document_id: int) -> dict[str, str]:
    return {"document_id": str(document_id), "version": "1", "audience": "'all'"}


def _handover(document_id: int) -> dict[str, str]:
    return {"username": "'fin_head'", "successor": "'fin_admin'", "open_tasks": "[]", "instances": "[]",
            "documents": f"[{{'id': {document_id}}}]"}


def _counts(app) -> tuple[int, int]:
    s = _db(app)
    try:
        return (s.scalar(select(func.count()).select_from(ProcessDefinition)),
                s.scalar(select(func.count()).where(AuditEvent.action == "definitions_deployed")))
    finally:
        s.close()


# -- deploy ---------------------------------------------------------------------------------------

def test_a_department_designer_cannot_deploy_an_account_for_another_department(app, login):
    """Issue 13 / R-ACC-2: office_admin (a designer, and OFFICE's administrator) deploys
    start → create_account(mallory, FIN, dept_admin, every group) → end: 422 naming the service
    task and the service, in Chinese by default and in English on request; nothing is deployed."""
    office = login("office_admin")
    before = _counts(app)
    problem = _refusal(_deploy(office, "open_account.bpmn", mallory()), "make_account", "create_account")
    assert "create user" in problem["message"] and "服务任务" in problem["message"]
    english = _refusal(_deploy(office, "open_account.bpmn", mallory(), lang="en"), "make_account", "create_account")
    assert english["message"].startswith("Service task 'make_account' calls 'create_account'")
    assert _counts(app) == before


@pytest.mark.parametrize("service, params", [
    ("publish_document", _publish(1)),
    ("apply_handover", _handover(1)),
    ("check_publication", {"document_id": "1", "audience": "'all'"}),
    ("deactivate_user", {"username": "'fin_head'"}),
    ("apply_permission_change", {"target_username": "'fin_head'", "new_role": "'dept_admin'", "groups": "[]"}),
    ("collect_grants", {}),
    ("compute_indicators", {}),
    ("publish_assessment", {}),
])
def test_other_privileged_services_are_refused_to_a_department_designer(login, service, params):
    """Issue 13 / R-DOC-4, R-ACC-4, R-SEC-7, R-SUP-3: publishing another department's document,
    handing over another head's documents, and the other acts only a procedure performs."""
    r = _deploy(login("office_admin"), "escalate.bpmn", diagram("escalate", "act", service, params))
    _refusal(r, "act", service)


def test_services_that_only_check_or_notify_stay_open_to_designers(login):
    """R-WF-1: what a department designs may still call the harmless services."""
    xml = diagram("who_handles", "check", "check_responsible_department", {"department": "'FIN'"})
    r = _deploy(login("office_admin"), "who_handles.bpmn", xml)
    assert r.status_code == 201, r.get_json()


def test_the_studio_validates_and_refuses_the_same(login):
    """Issue 13: the studio's validation lists the refused service task, its deploy answers 422, and
    a package imported into the draft deploys no better (R-WF-1)."""
    office = login("office_admin")
    create_model(office, "open_account")
    save(office, "open_account", 1, xml=mallory())
    found = office.post("/api/v1/studio/open_account/validate", json={}).get_json()
    assert not found["valid"]
    assert any(p["element_id"] == "make_account" and "create_account" in p["message"] for p in found["problems"])
    r = office.post("/api/v1/studio/open_account/deploy", json={"version": 2})
    _refusal(r, "make_account", "create_account")

    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("model.json", json.dumps({"key": "open_account", "name": "开户"}))
        z.writestr("open_account.bpmn", diagram("open_account", "hand_over", "apply_handover", _handover(1)))
    r = office.client.post("/api/v1/studio/open_account/package", headers=office._headers(),
                           data={"file": (io.BytesIO(package.getvalue()), "p.zip"), "version": "2"},
                           content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    _refusal(office.post("/api/v1/studio/open_account/deploy", json={"version": 3}), "hand_over", "apply_handover")
    assert login("sysadmin").get("/api/v1/process-definitions/open_account").status_code == 404


def _cli_env(app) -> dict:
    cfg = app.config["INKLESS"]
    return {"INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": cfg.secret_key}


def test_the_command_line_deploys_for_a_designer_with_the_designers_rights(app, org, tmp_path):
    """Issue 13: `inkless deploy --as office_admin` is refused like the API (exit 1, element and
    service named); without --as the operator deploys for the platform, as `inkless init` does."""
    path = tmp_path / "open_account.bpmn"
    path.write_text(mallory(), encoding="utf-8")
    env = _cli_env(app)
    refused = CliRunner().invoke(cli, ["deploy", "--as", "office_admin", str(path)], env=env)
    assert refused.exit_code == 1
    assert "make_account" in refused.output and "create_account" in refused.output
    assert CliRunner().invoke(cli, ["deploy", "--as", "clerk", str(path)], env=env).exit_code == 1
    platform = CliRunner().invoke(cli, ["deploy", str(path)], env=env)
    assert platform.exit_code == 0 and "deployed open_account version 1" in platform.output, platform.output
    s = _db(app)
    try:
        definition = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == "open_account"))
        assert s.get(Deployment, definition.deployment_id).deployed_by is None
    finally:
        s.close()


# -- run time, for a definition stored before the checks ----------------------------------------

def _stored_before_the_checks(app, deployer: str, key: str, xml: str) -> None:
    """A deployment row as the platform wrote it before services carried their authority."""
    s = _db(app)
    try:
        user = s.scalar(select(User).where(User.username == deployer))
        deployment = Deployment(deployed_by=user.id, files=[DeploymentFile(name=f"{key}.bpmn", kind="bpmn", content=xml)])
        s.add(deployment)
        s.flush()
        s.add(ProcessDefinition(key=key, version=1, name="测试流程", file=f"{key}.bpmn", deployment_id=deployment.id))
        s.commit()
    finally:
        s.close()


def _started_by_clerk(login, key: str) -> dict:
    r = login("clerk").post("/api/v1/process-instances", json={"process_key": key})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _forbidden_incident(instance: dict, element: str, service: str) -> dict:
    assert instance["state"] == "error", instance
    (incident,) = instance["incidents"]
    assert incident["element"] == element and incident["kind"] == "forbidden"
    assert service in incident["message"]
    return incident


def test_a_stored_account_diagram_creates_no_account(app, login, client):
    """Issue 13 / R-ACC-2: the definition office_admin stored earlier fails at its service task
    with a forbidden incident; mallory does not exist and no password was handed out."""
    _stored_before_the_checks(app, "office_admin", "open_account", mallory())
    instance = _started_by_clerk(login, "open_account")
    incident = _forbidden_incident(instance, "make_account", "create_account")
    assert "office_admin" in incident["message"]
    assert not instance.get("one_time_secrets")
    s = _db(app)
    try:
        assert s.scalar(select(User).where(User.username == "mallory")) is None
        assert s.scalar(select(func.count()).where(AuditEvent.action == "account_created")) == 0
    finally:
        s.close()


def test_a_stored_publication_diagram_publishes_nothing(app, login):
    """Issue 13 / R-DOC-4: FIN's internal document stays unpublished; the clerk still cannot read it."""
    document = _fin_document(login)
    _stored_before_the_checks(app, "office_admin", "leak", diagram("leak", "publish", "publish_document",
                                                                   _publish(document["id"])))
    _forbidden_incident(_started_by_clerk(login, "leak"), "publish", "publish_document")
    assert login("clerk").get(f"/api/v1/documents/{document['id']}").status_code == 404
    s = _db(app)
    try:
        assert s.get(Document, document["id"]).published_at is None
    finally:
        s.close()


def test_a_stored_handover_diagram_hands_nothing_over(app, login):
    """Issue 13 / R-ACC-4: the finance head keeps their document."""
    document = _fin_document(login)
    _stored_before_the_checks(app, "office_admin", "take", diagram("take", "hand_over", "apply_handover",
                                                                   _handover(document["id"])))
    _forbidden_incident(_started_by_clerk(login, "take"), "hand_over", "apply_handover")
    s = _db(app)
    try:
        owner = s.get(User, s.get(Document, document["id"]).owner_id)
        assert owner.username == "fin_head"
        assert s.scalar(select(func.count()).where(AuditEvent.action == "account_handed_over")) == 0
    finally:
        s.close()


# -- approvals ------------------------------------------------------------------------------------

def test_a_system_admins_diagram_still_needs_the_two_approvals(app, login):
    """Issue 13 / R-ACC-2: a system administrator holds `create user` and may deploy
    create_account, but it refuses to act without the department head's and the platform's
    approvals in the instance's history — and approvals by someone else (the initiator) do not count."""
    admin = login("sysadmin")
    assert _deploy(admin, "open_account.bpmn", mallory()).status_code == 201
    incident = _forbidden_incident(_started_by_clerk(login, "open_account"), "make_account", "create_account")
    assert "dept_head_review" in incident["message"]

    self_approved = diagram("self_approved", "make_account", "create_account", MALLORY,
                            approvals=(("dept_head_review", "initiator"), ("platform_review", "initiator")))
    assert _deploy(admin, "self_approved.bpmn", self_approved).status_code == 201
    clerk = login("clerk")
    instance = _started_by_clerk(login, "self_approved")
    complete(clerk, only_task(clerk, instance_id=instance["id"]), {"decision": "approve", "opinion": "同意"})
    result = complete(clerk, only_task(clerk, instance_id=instance["id"]), {"decision": "approve", "opinion": "同意"})
    assert "dept_head_review" in _forbidden_incident(result, "make_account", "create_account")["message"]
    s = _db(app)
    try:
        assert s.scalar(select(User).where(User.username == "mallory")) is None
    finally:
        s.close()


def _approved_account(login, key: str, groups: list[str]) -> dict:
    """A system administrator's diagram with the two approvals, given by FIN's head and the platform."""
    params = dict(MALLORY, roles="['user']", groups=repr(groups))
    xml = diagram(key, "make_account", "create_account", params,
                  approvals=(("dept_head_review", "user:fin_head"), ("platform_review", "platform_admin")))
    assert _deploy(login("sysadmin"), f"{key}.bpmn", xml).status_code == 201
    instance = _started_by_clerk(login, key)
    for who in ("fin_head", "platform"):
        api = login(who)
        result = complete(api, only_task(api, instance_id=instance["id"]), {"decision": "approve", "opinion": "同意"})
    return result


def test_with_both_approvals_the_account_is_created(login, client):
    """R-ACC-2: the same rule lets an approved application through, whoever deployed the diagram."""
    result = _approved_account(login, "approved_account", ["inspector"])
    assert result["state"] == "completed", result["incidents"]
    (secret,) = result["one_time_secrets"]
    assert secret["username"] == "mallory"
    assert client.post("/api/v1/auth/token", json={"username": "mallory", "password": secret["password"]}).status_code == 200


@pytest.mark.parametrize("group", ["dept_head", "platform_admin"])
def test_an_account_gets_nothing_its_approvers_may_not_grant(app, login, group):
    """R-ACC-3 / R-SEC-7: the office groups are granted by no procedure, approved or not."""
    result = _approved_account(login, "office_group", ["inspector", group])
    assert group in _forbidden_incident(result, "make_account", "create_account")["message"]
    s = _db(app)
    try:
        assert s.scalar(select(User).where(User.username == "mallory")) is None
    finally:
        s.close()


def _reviewed_publication(login, key: str, document: dict, submitted: bool) -> dict:
    """A system administrator's diagram: (check_publication →) FIN head's and the platform's
    approvals → publish_document; started by the document's owner, both approve."""
    check = ("check", _service_task("check", "check_publication",
                                    {"document_id": str(document["id"]), "audience": "'all'"}, result="check"))
    reviews = [(e, _approval(e, by)) for e, by in (("dept_head_review", "user:fin_head"),
                                                   ("platform_review", "platform_admin"))]
    publish = ("publish", _service_task("publish", "publish_document", _publish(document["id"])))
    xml = steps(key, *([check] if submitted else []), *reviews, publish)
    assert _deploy(login("sysadmin"), f"{key}.bpmn", xml).status_code == 201
    head = login("fin_head")
    r = head.post("/api/v1/process-instances", json={"process_key": key})
    assert r.status_code == 201, r.get_json()
    for who in ("fin_head", "platform"):
        api = login(who)
        result = complete(api, only_task(api, instance_id=r.get_json()["id"]), {"decision": "approve", "opinion": "同意"})
    return result


def test_approvals_publish_only_what_was_submitted_for_them(app, login):
    """R-DOC-4: with both reviews but no submission recorded by check_publication, publish_document
    refuses: approvals in one instance cannot be turned to another document."""
    document = _fin_document(login)
    result = _reviewed_publication(login, "unsubmitted", document, submitted=False)
    assert "publish_document" in _forbidden_incident(result, "publish", "publish_document")["message"]
    s = _db(app)
    try:
        assert s.get(Document, document["id"]).published_at is None
    finally:
        s.close()


def test_a_secret_document_needs_the_confidentiality_officer(app, login):
    """R-DOC-4: for 秘密 and above the platform's approval does not count; the confidentiality
    officer's is the one publish_document relies on."""
    set_clearance(login, "fin_head", "秘密")
    document = uploaded(login("fin_head"), b"FIN secret plan", title="财务秘密计划", security_level="秘密")
    result = _reviewed_publication(login, "secret_reviewed", document, submitted=True)
    assert "secrecy_review" in _forbidden_incident(result, "publish", "publish_document")["message"]
    s = _db(app)
    try:
        assert s.get(Document, document["id"]).published_at is None
    finally:
        s.close()


def test_an_internal_document_is_published_after_both_reviews(app, login):
    """R-DOC-4: the same checks let a submitted, reviewed internal document through."""
    document = _fin_document(login)
    result = _reviewed_publication(login, "internal_reviewed", document, submitted=True)
    assert result["state"] == "completed", result["incidents"]
    assert login("clerk").get(f"/api/v1/documents/{document['id']}").status_code == 200


# -- the declarations -----------------------------------------------------------------------------

def test_every_service_declares_its_authority():
    """Issue 13: every registered service says what it does; a privileged one names a permission
    the table grants, and registering a service without a declaration fails."""
    from service import policy
    from service.authority import AUTHORITIES, UNPRIVILEGED
    from service.services import SERVICES, service

    assert set(AUTHORITIES) == set(SERVICES)
    granted = {(r.action, r.resource) for r in policy.RULES if r.scope == policy.ALL}
    for name, authority in AUTHORITIES.items():
        if authority.effect in UNPRIVILEGED:
            assert authority.action is None, name
        else:
            assert (authority.action, authority.resource) in granted, name
    with pytest.raises(TypeError):
        service("undeclared")
    assert AUTHORITIES["create_account"].privileged and not AUTHORITIES["notify_escalation"].privileged


def test_the_documented_services_are_the_registry():
    """Issue 13: docs/architecture.md lists every service with the effect and permission it declares."""
    from pathlib import Path

    from service.authority import table

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("| service | does | needs | relies on |"):]
    documented = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("| "):
            break
        names, effect, needs, _relies = (cell.strip() for cell in line.strip("|").split("|"))
        for name in names.split(", "):
            documented[name] = (effect, needs)
    assert documented == {row["service"]: (row["effect"], f"{row['action']} {row['resource']}" if row["action"] else "")
                          for row in table()}


def test_the_policy_view_lists_what_each_service_needs(login):
    """R-SEC-7: administrators read the services' authority beside the rules."""
    body = login("office_admin").get("/api/v1/policy").get_json()
    services = {row["service"]: row for row in body["services"]}
    assert (services["create_account"]["action"], services["create_account"]["resource"]) == ("create", "user")
    assert services["create_account"]["relies_on"][0].startswith("dept_head_review")
    assert services["check_responsible_department"]["effect"] == "none"
