"""The designer's studio over HTTP (issue 7; R-WF-1, R-WF-4): catalogue permissions, drafts with
optimistic locking, validation naming elements, try-it in a sandbox, deploy as version N+1,
diff between versions, migration of running instances, zip packages."""
from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import func, select

from service.models import AuditEvent, Notification, ProcessInstance, User, UserGroup
from tests.service.flows import complete, only_task
from tests.service.studio_helpers import create_model, deploy, save, sequence, with_gateway

KEY = "car_request"


def test_catalogue_is_for_designers_and_only_the_owning_department_edits(login, app):
    """R-WF-1: a department designs its own processes; a designer of another department gets 403."""
    office = login("office_admin")  # designer of OFFICE
    model = create_model(office, KEY, category="行政", starters={"departments": ["OFFICE"]})
    assert model["department"] == "OFFICE" and model["editable"] is True
    assert model["draft"]["xml"].count(f'id="{KEY}"') == 1

    assert login("clerk").get("/api/v1/studio").status_code == 403
    assert login("fin_admin").get("/api/v1/studio").status_code == 403  # not a designer (yet)

    # A designer of FIN may read the catalogue but not change OFFICE's model.
    _make_designer(app, "fin_admin")
    fin_designer = login("fin_admin")
    listed = fin_designer.get("/api/v1/studio").get_json()["items"]
    assert [(m["key"], m["editable"]) for m in listed if m["department"] == "OFFICE"] == [(KEY, False)]
    assert not any(m["editable"] for m in listed)  # the built-in procedures are the platform's
    r = fin_designer.client.put(f"/api/v1/studio/{KEY}/draft", json={"version": 1, "xml": "<x/>"},
                                headers=fin_designer._headers())
    assert r.status_code == 403
    assert fin_designer.post(f"/api/v1/studio/{KEY}/deploy", json={"version": 1}).status_code == 403
    assert fin_designer.client.patch(f"/api/v1/studio/{KEY}", json={"name": "x"},
                                     headers=fin_designer._headers()).status_code == 403

    # A system administrator may change any model; an unknown starter group is named.
    admin = login("sysadmin")
    r = admin.client.patch(f"/api/v1/studio/{KEY}", json={"starters": {"groups": ["nobody"]}}, headers=admin._headers())
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "starters.groups"
    assert office.post("/api/v1/studio", json={"key": KEY}).status_code == 409
    assert office.post("/api/v1/studio", json={"key": "1 bad"}).status_code == 422


def _make_designer(app, username: str) -> None:
    with app.app_context():
        s = app.extensions["inkless.db"]()
        user = s.scalar(select(User).where(User.username == username))
        s.add(UserGroup(user_id=user.id, group_code="designer"))
        s.commit()
        s.close()


def test_draft_saves_bump_the_version_and_a_stale_save_gets_409(login):
    office = login("office_admin")
    create_model(office, KEY)
    first = save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写")), forms={"car.json": '{"type": "object"}'})
    assert first["version"] == 2
    r = office.client.put(f"/api/v1/studio/{KEY}/draft", json={"version": 1, "xml": "<lost/>"}, headers=office._headers())
    assert r.status_code == 409 and "2" in r.get_json()["message"]
    draft = office.get(f"/api/v1/studio/{KEY}").get_json()["draft"]
    assert draft["version"] == 2 and 'id="fill"' in draft["xml"] and draft["forms"] == {"car.json": '{"type": "object"}'}
    assert office.get(f"/api/v1/studio/{KEY}/draft/xml").data.decode() == draft["xml"]
    save(office, KEY, 2, status=422, forms={"../evil.json": "{}"})


def test_a_new_model_starts_valid_on_the_server(login):
    """Issue 14, R-WF-1: the new-model template passes the server's validation with no problem at
    all (not even a warning) and deploys as it is; the browser's lint of the same template is in
    tests/browser/test_studio.py."""
    office = login("office_admin")
    created = create_model(office, "fresh_model", name="新流程", starters={})
    assert created["draft"]["version"] == 1 and 'id="fresh_model"' in created["draft"]["xml"]
    r = office.post("/api/v1/studio/fresh_model/validate", json={})
    assert r.status_code == 200 and r.get_json() == {"valid": True, "problems": []}, r.get_json()
    assert deploy(office, "fresh_model", 1)["version"] == 1


def test_validation_names_the_gateway_without_conditions(login):
    """Every exclusive gateway needs a default or complete conditions; the problem names it."""
    office = login("office_admin")
    create_model(office, KEY)
    save(office, KEY, 1, xml=with_gateway(KEY, conditions=False))
    r = office.post(f"/api/v1/studio/{KEY}/validate", json={})
    body = r.get_json()
    assert r.status_code == 200 and body["valid"] is False
    gateway = [p for p in body["problems"] if p["element_id"] == "decide"]
    assert gateway and gateway[0]["file"] == f"{KEY}.bpmn" and gateway[0]["severity"] == "error"
    assert "to_ok" in gateway[0]["message"] and "网关" in gateway[0]["message"]  # in the user's language
    # Deploying is refused with the same problems; unsaved XML can be checked before saving.
    assert deploy(office, KEY, 2, status=422)["details"][0]["element"] == "decide"
    assert office.post(f"/api/v1/studio/{KEY}/validate", json={"xml": with_gateway(KEY, True)}).get_json()["valid"]
    # The executable process must be the model's own key.
    other = office.post(f"/api/v1/studio/{KEY}/validate", json={"xml": sequence("someone_else", ("a", "甲"))}).get_json()
    assert [p["element_id"] for p in other["problems"]] == ["someone_else"]


def test_try_it_runs_the_draft_in_a_sandbox_without_persisting(login, app):
    office = login("office_admin")
    create_model(office, KEY)
    save(office, KEY, 1, xml=with_gateway(KEY, conditions=True))
    scenario = {"name": "短途", "start": {"days": 2}, "steps": [{"task": "fill", "data": {"days": 2}},
                                                                 {"task": "ok", "data": {}}],
                "expect": {"path": ["fill", "decide", "ok"], "end": "end"}}
    before = _counts(app)
    result = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": scenario}).get_json()
    assert result["ok"] is True, result
    assert result["path"][:4] == ["start", "fill", "decide", "ok"] and result["path"][-1] == "end"
    # Stepping by hand: one step replayed, the run waits at the branch the data chose.
    partial = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {
        "steps": [{"task": "fill", "data": {"days": 9}}]}}).get_json()
    assert partial["waiting"] == ["redo"] and partial["ready"][0]["name"] == "复核"
    wrong = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": dict(scenario, steps=[
        {"task": "ok", "data": {}}])}).get_json()
    assert wrong["ok"] is False and any("ok" in f for f in wrong["failures"])
    assert _counts(app) == before  # no instance, no notification, no audit record


def _counts(app):
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return tuple(s.scalar(select(func.count()).select_from(t)) for t in (ProcessInstance, Notification, AuditEvent))
        finally:
            s.close()


def test_try_it_answers_service_tasks_from_the_scenario_only(login):
    office = login("office_admin")
    create_model(office, KEY)
    xml = (sequence(KEY, ("fill", "填写")).replace(
        '<bpmn:endEvent id="end" />',
        '<bpmn:serviceTask id="make" name="开户"><bpmn:extensionElements>'
        '<spiffworkflow:serviceTaskOperator id="create_account" resultVariable="account">'
        '<spiffworkflow:parameters><spiffworkflow:parameter id="username" type="str" value="\'zhang\'"/>'
        '</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>'
        '<bpmn:endEvent id="end" />').replace('targetRef="end"', 'targetRef="make"')
        .replace("</bpmn:process>", '<bpmn:sequenceFlow id="f_make_end" sourceRef="make" targetRef="end" /></bpmn:process>'))
    save(office, KEY, 1, xml=xml)
    steps = [{"task": "fill", "data": {}}]
    answered = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {
        "steps": steps, "services": {"create_account": {"username": "zhang", "user_id": 0}}}}).get_json()
    assert answered["ok"] and answered["data"]["account"] == {"username": "zhang", "user_id": 0}
    unanswered = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {"steps": steps}}).get_json()
    assert not unanswered["ok"] and any("create_account" in f for f in unanswered["failures"])
    users = login("sysadmin").get("/api/v1/users", query_string={"q": "zhang"}).get_json()
    assert all(u["username"] != "zhang" for u in users["items"])  # the real service never ran


def test_deploy_diff_and_migrate_running_instances(login):
    """Deploy gives N+1; the diff names elements; one instance migrates, one at a removed element is reported."""
    office = login("office_admin")
    create_model(office, KEY, starters={})
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写"), ("check", "核对")))
    assert deploy(office, KEY, 2)["version"] == 1

    clerk = login("clerk")
    early = clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()
    late = clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()
    complete(clerk, only_task(clerk, instance_id=late["id"]), {})  # now at "check"

    v2 = sequence(KEY, ("fill", "填写（新）"), ("approve", "审批"))
    save(office, KEY, 2, xml=v2)
    assert deploy(office, KEY, 3)["version"] == 2
    changes = office.get(f"/api/v1/studio/{KEY}/diff", query_string={"from": 1, "to": 2}).get_json()
    assert [(e["element_id"], e["name"]) for e in changes["added"]] == [("approve", "审批"), ("f_fill_approve", ""),
                                                                       ("f_approve_end", "")]
    assert [e["element_id"] for e in changes["removed"]] == ["check", "f_fill_check", "f_check_end"]
    fill = next(e for e in changes["changed"] if e["element_id"] == "fill")
    assert {(c["what"], c["old"], c["new"]) for c in fill["changes"]} == {
        ("@name", "填写", "填写（新）"), ("instructionsForEndUser", "请办理填写", "请办理填写（新）")}

    running = office.get(f"/api/v1/studio/{KEY}/instances").get_json()["items"]
    assert [(i["id"], i["version"], i["active"]) for i in running] == [(early["id"], 1, ["fill"]),
                                                                       (late["id"], 1, ["check"])]
    assert login("clerk").post(f"/api/v1/studio/{KEY}/migrate", json={}).status_code == 403
    r = office.post(f"/api/v1/studio/{KEY}/migrate", json={"to_version": 2})
    assert r.status_code == 200, r.get_json()
    outcome = r.get_json()
    assert outcome["migrated"] == [{"id": early["id"], "from": 1, "to": 2, "at": ["fill"]}]
    assert [(x["id"], x["elements"]) for x in outcome["refused"]] == [(late["id"], ["check"])]

    # The migrated instance runs on version 2 (its open task keeps its id; the next step is new).
    task = only_task(clerk, instance_id=early["id"])
    assert task["name"] == "填写（新）"
    complete(clerk, task, {})
    assert only_task(clerk, instance_id=early["id"])["element_id"] == "approve"
    # The refused one stays on version 1 and still finishes there.
    complete(clerk, only_task(clerk, instance_id=late["id"]), {})
    finished = clerk.get(f"/api/v1/process-instances/{late['id']}").get_json()
    assert finished["state"] == "completed" and finished["version"] == 1
    audit = login("sysadmin").get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()
    assert {i["id"]: i["version"] for i in audit["items"]}[early["id"]] == 2


def test_a_migration_dry_run_says_what_would_move_and_what_cannot_and_changes_nothing(app, login):
    """Issue 14, R-WF-1: before migrating, the API and the versions page show which instances would
    move (and where they wait) and which cannot, and why; nothing moves and nothing is audited until
    the administrator moves the instances the dry run listed."""
    from tests.service.test_pages import Browser, text

    office = login("office_admin")
    create_model(office, KEY, starters={})
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写"), ("check", "核对")))
    deploy(office, KEY, 2)
    clerk = login("clerk")
    early = clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()
    late = clerk.post("/api/v1/process-instances", json={"process_key": KEY}).get_json()
    complete(clerk, only_task(clerk, instance_id=late["id"]), {})  # now at "check"
    save(office, KEY, 2, xml=sequence(KEY, ("fill", "填写（新）"), ("approve", "审批")))
    deploy(office, KEY, 3)

    assert clerk.post(f"/api/v1/studio/{KEY}/migrate", json={"dry_run": True}).status_code == 403
    r = office.post(f"/api/v1/studio/{KEY}/migrate", json={"to_version": 2, "dry_run": True})
    assert r.status_code == 200, r.get_json()
    preview = r.get_json()
    assert preview["dry_run"] is True and preview["version"] == 2
    assert preview["migrated"] == [{"id": early["id"], "from": 1, "to": 2, "at": ["fill"]}]
    [stays] = preview["refused"]
    assert (stays["id"], stays["at"], stays["elements"]) == (late["id"], ["check"], ["check"])
    assert "check" in stays["reason"] and "2" in stays["reason"]
    with app.app_context():
        from service import db

        s = db.session()
        assert {i.id: i.version for i in s.scalars(select(ProcessInstance).where(
            ProcessInstance.process_key == KEY))} == {early["id"]: 1, late["id"]: 1}
        assert not s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("instance_migrated", "instance_migration_refused"))))
    assert only_task(clerk, instance_id=early["id"])["name"] == "填写"  # still on version 1

    # The page: the dry run first, then "move these" moves exactly the instances it listed.
    designer = Browser(app)
    designer.sign_in("office_admin")
    page = designer.get(f"/studio/{KEY}/versions", query_string={"migrate_to": 2})
    assert page.status_code == 200
    html = text(page)
    would = html[html.index("可以迁移（1）"):html.index("无法迁移（1）")]
    assert str(early["id"]) in would and "fill" in would
    cannot = html[html.index("无法迁移（1）"):]
    assert str(late["id"]) in cannot and "check" in cannot and "尚未迁移任何实例" in html
    r = designer.post(f"/studio/{KEY}/migrate", {"to_version": "2", "instance_id": str(early["id"])})
    assert r.status_code == 302
    assert "已有 1 个实例迁移到版本 2" in text(designer.get(f"/studio/{KEY}/versions"))
    assert only_task(clerk, instance_id=early["id"])["name"] == "填写（新）"
    assert clerk.get(f"/api/v1/process-instances/{late['id']}").get_json()["version"] == 1


def test_performer_choices_are_the_models_department_and_the_platform(login):
    """Issue 14, R-WF-1: the properties panel's performer picker lists what a lane of this model may
    name: the initiator's people, the platform's groups and the owning department's own groups and
    active people - not another department's group or people - each with the name a designer reads."""
    office = login("office_admin")
    assert office.post("/api/v1/groups", json={"code": "hr", "name": "人事组"}).status_code == 201
    assert login("fin_admin").post("/api/v1/groups", json={"code": "audit_fin", "name": "审计组"}).status_code == 201
    create_model(office, KEY)
    r = office.get(f"/api/v1/studio/{KEY}/performers")
    assert r.status_code == 200
    items = {i["spec"]: (i["kind"], i["name"]) for i in r.get_json()["items"]}
    assert items["initiator"] == ("person", "发起人") and items["dept_head"][0] == "person"
    assert items["group:hr"] == ("group", "功能组：人事组（办公室）")
    assert items["group:platform_admin"][0] == "group" and items["group:designer"][0] == "group"
    assert items["user:clerk"][0] == "user" and "clerk" in items["user:clerk"][1]
    assert "group:audit_fin" not in items and "user:fin_admin" not in items and "user:sysadmin" not in items
    specs = [i["spec"] for i in r.get_json()["items"]]
    assert specs.index("dept_admin") < specs.index("group:platform_admin") < specs.index("group:hr") < specs.index(
        "user:clerk")
    assert login("clerk").get(f"/api/v1/studio/{KEY}/performers").status_code == 403
    # Every listed spec deploys: a pick never gives a lane that deploy refuses.
    for spec in ("group:hr", "user:clerk", "dept_head"):
        xml = sequence(KEY, ("fill", "填写")).replace('value="initiator"', f'value="{spec}"')
        version = office.get(f"/api/v1/studio/{KEY}").get_json()["draft"]["version"]
        save(office, KEY, version, xml=xml)
        assert office.post(f"/api/v1/studio/{KEY}/validate", json={}).get_json()["valid"], spec


def test_zip_package_round_trip(login):
    office = login("office_admin")
    create_model(office, KEY, category="行政")
    scenario = {"steps": [{"task": "fill", "data": {}}], "expect": {"end": "end"}}
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写")), forms={"car.json": '{"type": "object"}'},
         scenarios={"happy": scenario})
    exported = office.get(f"/api/v1/studio/{KEY}/package")
    assert exported.status_code == 200 and exported.mimetype == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(exported.data)).namelist())
    assert names == [f"{KEY}.bpmn", "forms/car.json", "model.json", "tests/happy.json"]

    save(office, KEY, 2, xml=sequence(KEY, ("other", "别的")), forms={}, scenarios={})
    r = office.client.post(f"/api/v1/studio/{KEY}/package", data={"file": (io.BytesIO(exported.data), "p.zip"),
                                                                  "version": "3"},
                           content_type="multipart/form-data", headers=office._headers())
    assert r.status_code == 200, r.get_json()
    draft = office.get(f"/api/v1/studio/{KEY}").get_json()["draft"]
    assert 'id="fill"' in draft["xml"] and draft["forms"] == {"car.json": '{"type": "object"}'}
    assert draft["scenarios"] == {"happy": scenario}
    assert office.post(f"/api/v1/studio/{KEY}/try", json={"scenario_name": "happy"}).get_json()["ok"]

    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("model.json", json.dumps({"key": KEY}))
    r = office.client.post(f"/api/v1/studio/{KEY}/package", data={"file": (io.BytesIO(bad.getvalue()), "p.zip")},
                           content_type="multipart/form-data", headers=office._headers())
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "file"


def test_form_preview_uses_the_staff_renderer(login):
    office = login("office_admin")
    create_model(office, KEY)
    schema = {"type": "object", "required": ["plate"], "properties": {
        "plate": {"type": "string", "title": "车牌号"}, "days": {"type": "integer", "title": "天数"}}}
    html = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={"schema": schema, "ui": {}}).get_json()["html"]
    assert 'name="plate"' in html and "车牌号" in html and 'name="days"' in html and "required" in html


def test_try_it_reads_sample_data_from_the_tasks_own_form(login):
    """Issue 14, R-WF-1: a waiting task in try-it names its form; the draft's form file is drawn by
    the staff renderer and what is filled in is read and checked as a task page does (numbers as
    numbers, a missing required field named), so sample data needs no hand-written JSON."""
    office = login("office_admin")
    create_model(office, KEY, starters={})
    schema = {"type": "object", "required": ["plate", "days"], "properties": {
        "plate": {"type": "string", "title": "车牌号"}, "days": {"type": "integer", "title": "天数", "minimum": 1}}}
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写")).replace(
        'value="initiator" />', 'value="initiator" /><spiffworkflow:property name="formJsonSchemaFilename" '
        'value="car.json" /><spiffworkflow:property name="approval" value="true" />'),
        forms={"car.json": json.dumps(schema)})
    [ready] = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {}}).get_json()["ready"]
    assert (ready["element_id"], ready["form"], ready["approval"]) == ("fill", "car.json", True)

    asked = {"form": ready["form"], "ui_form": ready["ui_form"], "approval": ready["approval"]}
    drawn = office.post(f"/api/v1/studio/{KEY}/forms/preview", json=asked).get_json()
    assert 'name="plate"' in drawn["html"] and 'name="decision"' in drawn["html"]  # the approval block too
    r = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={**asked, "submitted": [
        ["plate", " 青A00001 "], ["decision", "approve"]]})
    assert r.status_code == 200
    read = r.get_json()
    assert read["data"] == {"plate": "青A00001", "decision": "approve"} and list(read["errors"]) == ["days"]
    assert 'value="青A00001"' in read["html"] and 'id="f-days-error"' in read["html"]
    read = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={**asked, "submitted": [
        ["plate", "青A00001"], ["days", "5"], ["decision", "return"]]}).get_json()
    assert list(read["errors"]) == ["opinion"]  # returning needs an opinion, as on a task page
    read = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={**asked, "submitted": [
        ["plate", "青A00001"], ["days", "5"], ["decision", "approve"]]}).get_json()
    assert read["errors"] == {} and read["data"] == {"plate": "青A00001", "days": 5, "decision": "approve"}
    run = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {"steps": [
        {"task": "fill", "data": read["data"]}]}}).get_json()
    assert run["ok"] and run["path"][-1] == "end"

    r = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={})
    assert r.status_code == 422 and r.get_json()["details"][0]["field"] == "schema"
    r = office.post(f"/api/v1/studio/{KEY}/forms/preview", json={**asked, "submitted": [["only one"]]})
    assert r.status_code == 422 and "submitted" in json.dumps(r.get_json(), ensure_ascii=False)


def test_studio_pages_for_designers_with_nav_link_and_strict_csp(app, org, login):
    """The catalogue, modeler, form editor and versions pages; the nav link only for designers."""
    from tests.service.test_pages import Browser, text

    designer = Browser(app)
    designer.sign_in("office_admin")
    assert "流程设计" in text(designer.get("/"))
    clerk = Browser(app)
    clerk.sign_in("clerk")
    assert "流程设计" not in text(clerk.get("/")) and clerk.get("/studio").status_code == 403

    r = designer.post("/studio", {"key": KEY, "name": "用车申请", "category": "行政", "starter_departments": "OFFICE"})
    assert r.status_code == 302 and r.location.endswith(f"/studio/{KEY}")
    page = designer.get(f"/studio/{KEY}")
    html = text(page)
    assert page.status_code == 200 and "build/modeler.js" in html and 'data-api="/api/v1/studio/car_request"' in html
    assert "script-src" not in page.headers["Content-Security-Policy"] and "'unsafe-inline'" not in page.headers[
        "Content-Security-Policy"] and "<script>" not in html
    listing = text(designer.get("/studio"))
    assert "用车申请" in listing and "办公室" in listing

    office = login("office_admin")
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写")).replace(
        'value="initiator" />', 'value="initiator" /><spiffworkflow:property name="formJsonSchemaFilename" value="car.json" />'))
    assert "car.json" in text(designer.get(f"/studio/{KEY}"))  # a form a task names can be opened
    form_page = designer.get(f"/studio/{KEY}/forms/car.json")
    assert form_page.status_code == 200 and "build/form-editor.js" in text(form_page)
    assert designer.get(f"/studio/{KEY}/forms/bad name.json").status_code == 422

    save(office, KEY, 2, forms={"car.json": '{"type": "object", "properties": {"plate": {"type": "string"}}}'})
    deploy(office, KEY, 3)
    save(office, KEY, 3, xml=sequence(KEY, ("fill", "填写"), ("check", "核对")))
    versions = text(designer.get(f"/studio/{KEY}/versions"))
    added = versions[versions.index("新增（3）"):versions.index("删除（")]
    assert "check" in added and "核对" in added
    r = designer.post(f"/studio/{KEY}/migrate", {"to_version": "1"})
    assert r.status_code == 302
    assert "没有选择要迁移的实例" in text(designer.get(f"/studio/{KEY}/versions"))


def test_only_the_chosen_starters_may_start_a_catalogued_process(app, login):
    """Who may start a model (groups or departments) is enforced when starting, and the start page
    lists only what the user may start."""
    from tests.service.test_pages import Browser, text

    office = login("office_admin")
    create_model(office, KEY, starters={"departments": ["FIN"], "groups": ["supervisor"]})
    save(office, KEY, 1, xml=sequence(KEY, ("fill", "填写")))
    deploy(office, KEY, 2)
    assert login("clerk").post("/api/v1/process-instances", json={"process_key": KEY}).status_code == 403
    assert login("fin_head").post("/api/v1/process-instances", json={"process_key": KEY}).status_code == 201
    assert login("supervisor").post("/api/v1/process-instances", json={"process_key": KEY}).status_code == 201
    clerk, fin = Browser(app), Browser(app)
    clerk.sign_in("clerk")
    fin.sign_in("fin_head")
    assert "用车申请" not in text(clerk.get("/start")) and "用车申请" in text(fin.get("/start"))
    assert "账号申请" in text(clerk.get("/start"))  # processes outside the catalogue stay open


def test_a_deployed_process_is_adopted_only_by_a_system_admin_and_bad_scenarios_are_named(login):
    office = login("office_admin")
    r = office.post("/api/v1/studio", json={"key": "account_application"})
    assert r.status_code == 409  # listed already, the platform's: OFFICE cannot claim it
    adopted = create_model(login("sysadmin"), "account_application", department="PLATFORM")
    assert adopted["department"] == "PLATFORM" and 'id="account_application"' in adopted["draft"]["xml"]
    assert adopted["deployed_versions"] == [1] and adopted["editable"] is True

    create_model(office, KEY)
    bad = office.post(f"/api/v1/studio/{KEY}/try", json={"scenario": {"steps": "fill"}})
    assert bad.status_code == 200 and not bad.get_json()["ok"] and "steps" in bad.get_json()["failures"][0]


def test_diff_against_the_draft_names_conditions_and_properties(login):
    office = login("office_admin")
    create_model(office, KEY)
    v1 = with_gateway(KEY, conditions=True)
    save(office, KEY, 1, xml=v1)
    deploy(office, KEY, 2)
    draft = v1.replace("days &lt;= 3", "days &lt;= 5").replace(
        '<bpmn:userTask id="ok" name="批准"><bpmn:extensionElements>',
        '<bpmn:userTask id="ok" name="批准"><bpmn:extensionElements>'
        '<spiffworkflow:preScript>checked = True</spiffworkflow:preScript>').replace(
        '<bpmn:userTask id="redo" name="复核"><bpmn:extensionElements>'
        '<spiffworkflow:instructionsForEndUser>请办理复核</spiffworkflow:instructionsForEndUser>'
        '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" />',
        '<bpmn:userTask id="redo" name="复核"><bpmn:extensionElements>'
        '<spiffworkflow:instructionsForEndUser>请办理复核</spiffworkflow:instructionsForEndUser>'
        '<spiffworkflow:properties><spiffworkflow:property name="performers" value="dept_head" />')
    save(office, KEY, 2, xml=draft)
    changes = office.get(f"/api/v1/studio/{KEY}/diff", query_string={"from": 1, "to": "draft"}).get_json()
    assert not changes["added"] and not changes["removed"]
    by_id = {e["element_id"]: {(c["what"], c["old"], c["new"]) for c in e["changes"]} for e in changes["changed"]}
    assert by_id == {"to_ok": {("conditionExpression", "days <= 3", "days <= 5")},
                     "ok": {("preScript", None, "checked = True")},
                     "redo": {("property performers", "initiator", "dept_head")}}
