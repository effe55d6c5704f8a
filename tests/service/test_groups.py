"""Functional groups as data, and lanes that resolve or do not deploy (issue 14; R-ACC-3, R-WF-1,
R-SEC-7, R-SEC-8): a department administrator makes a group of their department and chooses its
members; a designer's lane names it; its member gets the task. Through the REST API and the CLI."""
from __future__ import annotations

import io

from click.testing import CliRunner
from sqlalchemy import select

from service.cli import main as cli
from service.models import AuditEvent, User
from tests.service.flows import complete, only_task

GROUPS = "/api/v1/groups"


def leave_request(review_lane: str = "人事组 (hr)", key: str = "leave_hr", performers: str | None = None) -> bytes:
    """The applicant asks for leave (lane 申请人); the review lane's people decide."""
    review_props = (f'<bpmn:extensionElements><spiffworkflow:properties><spiffworkflow:property name="performers" '
                    f'value="{performers}" /></spiffworkflow:properties>') if performers else "<bpmn:extensionElements>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:process id="{key}" name="请假申请" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_applicant" name="申请人">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>ask</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_review" name="{review_lane}">
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="ask" name="填写请假申请">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>请说明请假天数和理由。</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="review" name="人事审核">
      {review_props}
        <spiffworkflow:instructionsForEndUser>审核请假申请。</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="review" />
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def deploy(api, content: bytes, name: str = "leave_hr.bpmn", lang: str | None = None):
    return api.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(content), name)]},
                           content_type="multipart/form-data", headers=api._headers(),
                           query_string={"lang": lang} if lang else {})


def delete(api, url: str):
    return api.client.delete(url, headers=api._headers())


def make_hr(login, member: str = "clerk") -> dict:
    office = login("office_admin")
    r = office.post(GROUPS, json={"code": "hr", "name": "人事组", "name_en": "Human resources"})
    assert r.status_code == 201, r.get_json()
    r = office.post(f"{GROUPS}/hr/members", json={"username": member})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _audit(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()
        finally:
            s.close()


def _user_id(app, username: str) -> int:
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return s.scalar(select(User.id).where(User.username == username))
        finally:
            s.close()


def test_a_department_admin_makes_group_hr_whose_lane_gives_its_member_the_task(app, login):
    """Issue 14 must-show: OFFICE's administrator creates `hr` with a member, a designer (the same
    administrator is in group designer) deploys a leave request whose lane is hr, and the member gets
    the task and completes it. Creation and membership are audited (R-SEC-8)."""
    group = make_hr(login)
    assert group["code"] == "hr" and group["department"] == "OFFICE" and group["builtin"] is False
    assert [m["username"] for m in group["members"]] == ["clerk"]
    assert group["manageable"] and group["grantable"]

    r = deploy(login("office_admin"), leave_request())
    assert r.status_code == 201, r.get_json()

    head = login("office_head")
    started = head.post("/api/v1/process-instances", json={"process_key": "leave_hr"})
    assert started.status_code == 201, started.get_json()
    instance = started.get_json()["id"]
    complete(head, only_task(head, instance_id=instance), {})

    clerk = login("clerk")
    task = only_task(clerk, instance_id=instance)
    assert task["element_id"] == "review" and task["candidates"]["groups"] == ["hr"]
    # Nobody else: not the platform (no fallback), not the head who applied.
    assert login("platform").get("/api/v1/tasks", query_string={"instance_id": instance}).get_json()["total"] == 0
    assert complete(clerk, task, {})["state"] == "completed"

    office_admin = _user_id(app, "office_admin")
    (created,) = _audit(app, "group_created")
    assert created.actor_id == office_admin and created.object_id == "hr"
    assert created.detail == {"code": "hr", "name": "人事组", "name_en": "Human resources", "department": "OFFICE"}
    (added,) = _audit(app, "group_member_added")
    assert added.actor_id == office_admin and added.detail == {"code": "hr", "username": "clerk"}
    assert _audit(app, "task_unassigned") == []


def test_a_member_added_later_sees_the_waiting_task(login):
    """R-ACC-3: a lane's group stays a group, so someone added to it after the task opened finds it."""
    make_hr(login)
    assert deploy(login("office_admin"), leave_request()).status_code == 201
    head = login("office_head")
    instance = head.post("/api/v1/process-instances", json={"process_key": "leave_hr"}).get_json()["id"]
    complete(head, only_task(head, instance_id=instance), {})
    office_admin = login("office_admin")
    assert office_admin.get("/api/v1/tasks", query_string={"instance_id": instance}).get_json()["total"] == 0
    assert office_admin.post(f"{GROUPS}/hr/members", json={"username": "office_admin"}).status_code == 201
    assert only_task(office_admin, instance_id=instance)["element_id"] == "review"


def test_a_lane_naming_an_unknown_group_is_refused_at_deploy_with_the_lane_named(login):
    """Issue 14: a lane naming a group nobody created is a 422 naming the lane and its task, in
    Chinese by default and in English on request; nothing is deployed."""
    designer = login("office_admin")
    r = deploy(designer, leave_request("财务组 (hr2)"))
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "invalid_diagram"
    (problem,) = body["details"]
    assert problem["element"] == "review" and problem["lane"] == "财务组 (hr2)" and problem["file"] == "leave_hr.bpmn"
    assert "财务组 (hr2)" in problem["message"] and "hr2" in problem["message"] and "不存在" in problem["message"]
    assert "review" in body["message"]
    english = deploy(designer, leave_request("财务组 (hr2)"), lang="en").get_json()
    assert english["details"][0]["message"] == (
        "Lane '财务组 (hr2)' (task '人事审核') names group 'hr2', which does not exist.")
    assert designer.get("/api/v1/process-definitions/leave_hr").status_code == 404


def test_a_lane_named_after_a_groups_chinese_name_is_told_the_code(login):
    """Issue 14: a lane that names the group by its Chinese name is refused with the spelling that works."""
    make_hr(login)
    r = deploy(login("office_admin"), leave_request("人事组"), lang="en")
    assert r.status_code == 422
    assert r.get_json()["details"][0]["message"].endswith("Did you mean 人事组 (hr)?")


def test_performers_naming_an_unknown_user_or_group_are_refused_at_deploy(login):
    """Issue 14: the `performers` property is checked like the lane: every missing group and user is named."""
    r = deploy(login("sysadmin"), leave_request(performers="user:nobody,group:ghosts,supervisor"), lang="en")
    assert r.status_code == 422
    messages = [d["message"] for d in r.get_json()["details"]]
    assert messages == ["The performers of task '人事审核' name group 'ghosts', which does not exist.",
                        "The performers of task '人事审核' name user 'nobody', who does not exist or has left."]
    assert deploy(login("sysadmin"), leave_request(performers="user:clerk,supervisor,dept_head")).status_code == 201


def test_a_department_admin_keeps_only_their_own_departments_groups(login):
    """R-ACC-3, R-SEC-7: FIN's administrator can neither add members to OFFICE's group nor change it;
    OFFICE's cannot take in FIN's people nor create platform or FIN groups; a clerk keeps none."""
    make_hr(login)
    fin = login("fin_admin")
    for username in ("fin_head", "clerk"):
        r = fin.post(f"{GROUPS}/hr/members", json={"username": username})
        assert r.status_code == 403, r.get_json()
        assert set(r.get_json()) == {"code", "message", "details"}
    assert delete(fin, f"{GROUPS}/hr/members/clerk").status_code == 403
    assert fin.client.patch(f"{GROUPS}/hr", json={"name": "财务"}, headers=fin._headers()).status_code == 403
    assert delete(fin, f"{GROUPS}/hr").status_code == 403
    # FIN's administrator reads the group (its code is what diagrams name) but not OFFICE's members.
    seen = fin.get(f"{GROUPS}/hr").get_json()
    assert seen["members"] == [] and not seen["manageable"] and not seen["grantable"]

    office = login("office_admin")
    r = office.post(f"{GROUPS}/hr/members", json={"username": "fin_head"})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "username"
    # The same answer for someone who does not exist: the form reveals nobody in other departments.
    assert office.post(f"{GROUPS}/hr/members", json={"username": "nobody"}).get_json()["message"] == \
        r.get_json()["message"].replace("fin_head", "nobody")
    assert office.post(GROUPS, json={"code": "plat", "name": "平台组", "department": None}).status_code == 403
    assert office.post(GROUPS, json={"code": "fin2", "name": "财务组", "department": "FIN"}).status_code == 403
    assert office.post(f"{GROUPS}/hr/members", json={"username": "clerk"}).status_code == 409

    clerk = login("clerk")
    assert clerk.get(GROUPS).status_code == 403
    assert clerk.post(GROUPS, json={"code": "mine", "name": "我的组"}).status_code == 403
    assert clerk.post(f"{GROUPS}/hr/members", json={"username": "clerk"}).status_code == 403


def test_system_admins_keep_platform_groups_and_a_department_group_holds_its_own_people(login):
    """R-ACC-3: the system administrator creates platform and department groups; a department's group
    takes only that department's people, a platform group anyone's."""
    admin = login("sysadmin")
    r = admin.post(GROUPS, json={"code": "committee", "name": "评审委员会"})
    assert r.status_code == 201 and r.get_json()["department"] is None
    for username in ("clerk", "fin_head"):
        assert admin.post(f"{GROUPS}/committee/members", json={"username": username}).status_code == 201
    assert admin.post(GROUPS, json={"code": "fin_audit", "name": "审计组", "department": "FIN"}).status_code == 201
    r = admin.post(f"{GROUPS}/fin_audit/members", json={"username": "clerk"})
    assert r.status_code == 422 and "FIN" in r.get_json()["message"]
    assert admin.post(f"{GROUPS}/fin_audit/members", json={"username": "fin_head"}).status_code == 201
    # FIN's administrator keeps FIN's group but not the platform's.
    fin = login("fin_admin")
    assert delete(fin, f"{GROUPS}/fin_audit/members/fin_head").status_code == 200
    assert fin.post(f"{GROUPS}/committee/members", json={"username": "fin_head"}).status_code == 403
    listed = {g["code"]: g for g in admin.get(GROUPS).get_json()["items"]}
    assert [m["username"] for m in listed["committee"]["members"]] == ["clerk", "fin_head"]
    assert listed["fin_audit"]["members"] == [] and listed["designer"]["builtin"]
    assert admin.post(GROUPS, json={"code": "committee", "name": "重复"}).status_code == 409
    for code in ("HR", "x", "initiator", "group", "a-b"):
        r = admin.post(GROUPS, json={"code": code, "name": "坏"})
        assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "code", code


def test_built_in_groups_stay_protected(login):
    """R-SEC-7: nobody renames or deletes a built-in group, nobody grants more than they hold, and
    nobody grants themselves a built-in group."""
    admin = login("sysadmin")
    assert delete(admin, f"{GROUPS}/designer").status_code == 403
    assert admin.client.patch(f"{GROUPS}/supervisor", json={"name": "改名"}, headers=admin._headers()).status_code == 403
    assert admin.post(f"{GROUPS}/platform_admin/members", json={"username": "clerk"}).status_code == 403
    assert admin.post(f"{GROUPS}/dept_head/members", json={"username": "clerk"}).status_code == 403
    assert admin.post(f"{GROUPS}/supervisor/members", json={"username": "sysadmin"}).status_code == 403
    assert admin.post(f"{GROUPS}/supervisor/members", json={"username": "clerk"}).status_code == 201
    office = login("office_admin")
    assert office.post(f"{GROUPS}/inspector/members", json={"username": "clerk"}).status_code == 201
    assert office.post(f"{GROUPS}/confidentiality_officer/members", json={"username": "office_head"}).status_code == 403
    assert delete(office, f"{GROUPS}/designer/members/office_admin").status_code == 403
    assert delete(office, f"{GROUPS}/inspector/members/clerk").status_code == 200


def test_a_group_with_open_tasks_or_named_by_a_current_process_cannot_be_deleted(app, login):
    """Issue 14: deletion is refused (409) while a task waits for the group and while the current
    version of a process names it; then it goes, memberships with it, audited."""
    make_hr(login)
    designer = login("office_admin")
    assert deploy(designer, leave_request()).status_code == 201
    head = login("office_head")
    instance = head.post("/api/v1/process-instances", json={"process_key": "leave_hr"}).get_json()["id"]
    complete(head, only_task(head, instance_id=instance), {})

    r = delete(designer, f"{GROUPS}/hr")
    assert r.status_code == 409 and r.get_json()["details"] == {"open_tasks": 1}
    complete(login("clerk"), only_task(login("clerk"), instance_id=instance), {})
    r = delete(designer, f"{GROUPS}/hr")
    assert r.status_code == 409 and r.get_json()["details"] == {"processes": ["leave_hr"]}

    assert deploy(designer, leave_request("部门负责人 (dept_head)")).status_code == 201
    assert delete(designer, f"{GROUPS}/hr").status_code == 204
    assert designer.get(f"{GROUPS}/hr").status_code == 404
    assert "hr" not in next(u for u in designer.get("/api/v1/users").get_json()["items"]
                            if u["username"] == "clerk")["groups"]
    (deleted,) = _audit(app, "group_deleted")
    assert deleted.detail == {"code": "hr", "name": "人事组", "members": ["clerk"]}
    assert deleted.actor_id == _user_id(app, "office_admin")


def test_renaming_a_group_keeps_its_code_and_is_audited(app, login):
    """R-SEC-8: changing a group is audited with what it was."""
    make_hr(login)
    office = login("office_admin")
    r = office.client.patch(f"{GROUPS}/hr", json={"name": "人力资源组", "name_en": None}, headers=office._headers())
    assert r.status_code == 200 and r.get_json()["name"] == "人力资源组" and r.get_json()["name_en"] is None
    (updated,) = _audit(app, "group_updated")
    assert updated.detail["before"] == {"name": "人事组", "name_en": "Human resources"}
    assert updated.detail["after"] == {"name": "人力资源组", "name_en": None}


def _cli_env(app) -> dict:
    cfg = app.config["INKLESS"]
    return {"INKLESS_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url, "INKLESS_SECRET_KEY": cfg.secret_key}


def test_the_command_line_creates_groups_and_user_create_accepts_the_departments_own(app, org):
    """Issue 14: `inkless group create/add/remove/list/delete`, and `inkless user create --group`
    accepts the department's own group (not another department's)."""
    env = _cli_env(app)
    run = CliRunner()
    result = run.invoke(cli, ["group", "create", "hr", "--name", "人事组", "--department", "OFFICE"], env=env)
    assert result.exit_code == 0, result.output
    result = run.invoke(cli, ["user", "create", "--username", "hr_clerk", "--password", "long enough password 1",
                              "--department", "OFFICE", "--group", "hr"], env=env)
    assert result.exit_code == 0, result.output
    refused = run.invoke(cli, ["user", "create", "--username", "fin_clerk", "--password", "long enough password 1",
                               "--department", "FIN", "--group", "hr"], env=env)
    assert refused.exit_code != 0 and "hr" in refused.output
    assert run.invoke(cli, ["group", "add", "hr", "clerk"], env=env).exit_code == 0
    listing = run.invoke(cli, ["group", "list"], env=env)
    line = next(x for x in listing.output.splitlines() if x.startswith("hr "))
    assert "OFFICE" in line and "人事组" in line and "[clerk,hr_clerk]" in line
    assert run.invoke(cli, ["group", "remove", "hr", "hr_clerk"], env=env).exit_code == 0
    again = run.invoke(cli, ["group", "remove", "hr", "hr_clerk"], env=env)
    assert again.exit_code != 0 and "hr_clerk" in again.output
    unknown = run.invoke(cli, ["group", "add", "nothing", "clerk"], env=env)
    assert unknown.exit_code != 0 and "nothing" in unknown.output
    assert run.invoke(cli, ["group", "delete", "designer"], env=env).exit_code != 0
    assert run.invoke(cli, ["group", "delete", "hr"], env=env).exit_code == 0
    assert "hr " not in run.invoke(cli, ["group", "list"], env=env).output
    assert [e.actor_id for e in _audit(app, "group_created")] == [None]
    assert len(_audit(app, "group_member_removed")) == 1 and len(_audit(app, "group_deleted")) == 1


def test_the_administration_page_creates_a_group_and_adds_a_member(app, login):
    """Issue 14: the page, Chinese by default and English on ?lang=en, with CSRF on its forms; a
    department administrator creates a group of their department and chooses a member from it; a
    refusal is shown above the list; an ordinary user is refused the page."""
    from tests.service.test_pages import Browser, text

    admin = Browser(app)
    admin.sign_in("office_admin")
    page = admin.get("/groups")
    assert page.status_code == 200
    body = text(page)
    assert "职能组" in body and "新建职能组" in body and "流程设计" in body
    # Only their own department to create in; nobody of another department to add.
    assert 'value="OFFICE"' in body and 'value="FIN"' not in body and "fin_head" not in body
    assert 'name="csrf_token"' in body.split('id="new-group"')[1]

    assert admin.post("/groups", {"code": "hr", "name": "人事组"}, csrf=False).status_code == 403
    r = admin.post("/groups", {"code": "hr", "name": "人事组", "name_en": "Human resources", "department": "OFFICE"})
    assert r.status_code == 303
    r = admin.post("/groups/hr/members", {"username": "clerk"})
    assert r.status_code == 303
    body = text(admin.get("/groups"))
    assert "职能组 hr 已创建。" in body and "已将 clerk 加入职能组 hr。" in body
    row = body.split('id="group-hr"')[1].split("</tr>")[0]
    assert "人事组" in row and "OFFICE" in row and "clerk" in row and "移出职能组 hr" in row

    r = admin.post("/groups/hr/members", {"username": "fin_head"})
    assert r.status_code == 303
    assert "用户 fin_head 不存在或不属于您管理的部门" in text(admin.get("/groups"))

    english = text(admin.get("/groups?lang=en"))
    assert "Functional groups" in english and "Human resources" in english and "Add member" in english

    clerk = Browser(app)
    clerk.sign_in("clerk")
    assert clerk.get("/groups").status_code == 403
    assert login("office_admin").get(f"{GROUPS}/hr").get_json()["members"][0]["username"] == "clerk"
