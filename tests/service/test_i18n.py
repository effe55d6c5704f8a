"""UI language: Simplified Chinese by default, English on request (`?lang=en`, `lang` cookie,
the user's profile, an English Accept-Language); and the Chinese catalogue is complete."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.conftest import FIXTURES, ROOT
from tests.service.studio_helpers import HEAD
from tests.service.test_account_application import APPLICATION
from tests.service.test_pages import browser  # noqa: F401 - the signed-in page client fixture

TRANSLATIONS = ROOT / "service" / "translations"
ZH_PO = TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po"
ZH_MO = TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.mo"
HOW_TO_FIX = (
    "Fix: run `make translations` (extracts the strings and updates "
    "service/translations/zh/LC_MESSAGES/messages.po), translate every empty or fuzzy msgstr into "
    "Simplified Chinese keeping each %(name)s placeholder (delete the `#, fuzzy` line once checked), "
    "then run `make translations` again so messages.mo is recompiled; commit both .po and .mo."
)
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]")


# --- the language of API messages -------------------------------------------------------------


def test_unauthenticated_message_is_chinese_by_default_and_english_on_request(anon, client):
    r = anon.get("/api/v1/tasks")
    assert r.status_code == 401
    assert r.get_json()["message"] == "请先登录。"

    r = anon.get("/api/v1/tasks", query_string={"lang": "en"})
    assert r.status_code == 401
    assert r.get_json()["message"] == "Sign in first."

    r = anon.get("/api/v1/tasks", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert r.get_json()["message"] == "Sign in first."

    r = anon.get("/api/v1/tasks", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert r.get_json()["message"] == "请先登录。"

    client.set_cookie("lang", "en")
    assert anon.get("/api/v1/tasks").get_json()["message"] == "Sign in first."
    # ?lang wins over the cookie; an unsupported value is ignored.
    assert anon.get("/api/v1/tasks", query_string={"lang": "zh"}).get_json()["message"] == "请先登录。"
    client.delete_cookie("lang")
    assert anon.get("/api/v1/tasks", query_string={"lang": "fr"}).get_json()["message"] == "请先登录。"


def _start_application(api) -> str:
    r = api.post("/api/v1/process-instances", json={"process_key": "account_application", "business_key": "ACC-I18N"})
    assert r.status_code == 201, r.get_json()
    instance = r.get_json()
    r = api.get("/api/v1/tasks", query_string={"instance_id": instance["id"]})
    assert r.status_code == 200, r.get_json()
    (task,) = r.get_json()["items"]
    assert task["element_id"] == "fill_application"
    return task["id"]


def test_form_errors_name_the_field_in_the_users_language(login):
    api = login("office_admin")
    task_id = _start_application(api)
    bad = {"data": {"username": "X"}}  # everything else missing, the login name malformed

    r = api.post(f"/api/v1/tasks/{task_id}/complete", json=bad)
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["code"] == "invalid_form"
    assert body["message"].startswith("以下字段有误：")
    assert "full_name" in body["message"]
    by_field = {d["field"]: d["message"] for d in body["details"]}
    # The field's label comes from the form (Chinese); the sentence around it from the catalogue.
    assert by_field["full_name"] == "姓名为必填项"
    assert by_field["username"] == "登录名格式不正确"

    r = api.post(f"/api/v1/tasks/{task_id}/complete", json=bad, query_string={"lang": "en"})
    assert r.status_code == 422
    body = r.get_json()
    assert body["message"].startswith("Invalid field: ")
    by_field = {d["field"]: d["message"] for d in body["details"]}
    assert by_field["full_name"] == "Full name is required"  # the form's title_en
    assert by_field["username"] == "Login name has an invalid format"

    # Nothing was completed by the refused attempts.
    assert api.get(f"/api/v1/tasks/{task_id}").status_code == 200


def test_approval_block_is_translated(login):
    """The shared decision block (approve / return / reject + opinion) speaks the user's language."""
    api = login("office_admin")
    task_id = _start_application(api)
    r = api.post(f"/api/v1/tasks/{task_id}/complete", json={"data": APPLICATION})
    assert r.status_code == 200, r.get_json()
    head = login("office_head")
    (task,) = head.get("/api/v1/tasks").get_json()["items"]

    form = head.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]["properties"]
    assert form["decision"]["title"] == "审核结论"
    assert [o["title"] for o in form["decision"]["oneOf"]] == ["同意", "退回修改", "驳回"]
    assert form["opinion"]["title"] == "审核意见"
    form_en = head.get(f"/api/v1/tasks/{task['id']}", query_string={"lang": "en"}).get_json()["form"]["properties"]
    assert [o["title"] for o in form_en["decision"]["oneOf"]] == ["Approve", "Return for amendment", "Reject"]
    assert form_en["opinion"]["title"] == "Opinion"

    r = head.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "reject"}})
    assert r.status_code == 422, r.get_json()
    assert {"field": "opinion", "message": "退回或驳回时必须填写审核意见。"} in r.get_json()["details"]
    r = head.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, query_string={"lang": "en"})
    assert r.status_code == 422, r.get_json()
    assert {"field": "decision", "message": "Decision is required"} in r.get_json()["details"]


def _upload(api, path: Path, **query):
    with open(path, "rb") as f:
        return api.post("/api/v1/process-definitions", data={"files": (f, path.name)},
                        content_type="multipart/form-data", query_string=query)


def test_diagram_problems_are_chinese_by_default_and_english_on_request(login):
    api = login("sysadmin")
    path = FIXTURES / "bpmn" / "invalid" / "bad_script.bpmn"

    r = _upload(api, path)
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["code"] == "invalid_diagram"
    assert body["message"].startswith("流程图有误：compute：脚本错误：")
    (problem,) = body["details"]
    assert problem["element"] == "compute" and problem["file"] == "bad_script.bpmn"
    assert problem["message"].startswith("脚本错误：")

    r = _upload(api, path, lang="en")
    assert r.status_code == 422
    body = r.get_json()
    assert body["message"].startswith("The diagram is invalid: compute: script error: ")
    assert body["details"][0]["message"].startswith("script error: ")


def test_users_profile_language_is_used(app, login):
    from service.models import User

    api = login("sysadmin")
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        user = s.query(User).filter_by(username="sysadmin").one()
        user.locale = "en"
        s.commit()
        s.close()
    r = _upload(api, FIXTURES / "bpmn" / "invalid" / "bad_script.bpmn")
    assert r.status_code == 422
    assert r.get_json()["details"][0]["message"].startswith("script error: ")
    # ?lang still wins over the profile.
    r = _upload(api, FIXTURES / "bpmn" / "invalid" / "bad_script.bpmn", lang="zh")
    assert r.get_json()["details"][0]["message"].startswith("脚本错误：")


# --- the catalogue -----------------------------------------------------------------------------


def test_flask_babel_finds_the_catalogue(app):
    from flask_babel import get_babel

    with app.app_context():
        directories = [Path(d).resolve() for d in get_babel(app).translation_directories]
    assert TRANSLATIONS.resolve() in directories
    assert ZH_MO.is_file(), "messages.mo is missing. " + HOW_TO_FIX


def _catalog():
    with open(ZH_PO, "rb") as f:
        return read_po(f, locale="zh")


def _source_msgids() -> set[str]:
    """Every message marked in the code, extracted with babel.cfg as `make translations` does."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = dict(DEFAULT_KEYWORDS, lazy_gettext=None)
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_every_marked_string_is_in_the_catalogue():
    missing = sorted(_source_msgids() - {m.id for m in _catalog() if m.id})
    assert not missing, f"{len(missing)} string(s) in the code are not in messages.po: {missing}. " + HOW_TO_FIX


def test_every_message_has_a_chinese_translation():
    untranslated, fuzzy, bad_placeholders = [], [], []
    for m in _catalog():
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(s and s.strip() for s in strings):
            untranslated.append(ids[0])
            continue
        if m.fuzzy:
            fuzzy.append(ids[0])
        wanted = set(PLACEHOLDER.findall(ids[0]))
        if any(set(PLACEHOLDER.findall(s)) != wanted for s in strings):
            bad_placeholders.append(ids[0])
    assert not untranslated, f"Untranslated messages: {untranslated}. " + HOW_TO_FIX
    assert not fuzzy, f"Fuzzy (unchecked) translations, which the .mo leaves out: {fuzzy}. " + HOW_TO_FIX
    assert not bad_placeholders, (
        f"The translation must use exactly the msgid's %(name)s placeholders: {bad_placeholders}. " + HOW_TO_FIX)


def test_compiled_catalogue_matches_the_po():
    with open(ZH_MO, "rb") as f:
        compiled = {(m.id, m.context): m.string for m in read_mo(f) if m.id}  # msgctxt: one msgid, two meanings
    stale = [m.id for m in _catalog() if m.id and not m.fuzzy and compiled.get((m.id, m.context)) != m.string]
    assert not stale, f"messages.mo is out of date for: {stale}. " + HOW_TO_FIX



# --- what designers write, in the user's language ---------------------------------------------

LEAVE_FORM = {
    "title": "请假申请", "title_en": "Leave request",
    "type": "object", "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "title": "假别", "title_en": "Kind of leave",
                 "oneOf": [{"const": "annual", "title": "年休假", "title_en": "Annual leave"},
                           {"const": "sick", "title": "病假"}]},
        "reason": {"type": "string", "title": "事由", "description": "请写明事由", "description_en": "Say why"},
    },
}
LEAVE_UI = {"reason": {"ui:widget": "textarea", "ui:help": "可以不填", "ui:help_en": "May be left empty"}}


def test_a_designers_form_speaks_english_where_the_designer_wrote_it(login):
    """Issue 17 (R-WF-1, UI language): a form's `title_en`/`description_en` and a UI schema's
    `ui:help_en` replace the Chinese under English; text without English stays as written; the
    `_en` keys never reach the client, and field errors name the field in the user's language."""
    task = ('<bpmn:userTask id="ask" name="填写请假单"><bpmn:extensionElements><spiffworkflow:properties>'
            '<spiffworkflow:property name="performers" value="initiator" />'
            '<spiffworkflow:property name="formJsonSchemaFilename" value="leave_en.json" />'
            '<spiffworkflow:property name="formUiSchemaFilename" value="leave_en.uischema.json" />'
            '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')
    xml = (HEAD + '<bpmn:process id="leave_en" name="请假" isExecutable="true"><bpmn:startEvent id="start" />'
           f'{task}<bpmn:endEvent id="end" /><bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />'
           '<bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" /></bpmn:process></bpmn:definitions>')
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": [
        (io.BytesIO(xml.encode()), "leave_en.bpmn"),
        (io.BytesIO(json.dumps(LEAVE_FORM, ensure_ascii=False).encode()), "leave_en.json"),
        (io.BytesIO(json.dumps(LEAVE_UI, ensure_ascii=False).encode()), "leave_en.uischema.json")]},
        content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "leave_en"}).get_json()
    task_id = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]["id"]

    zh = clerk.get(f"/api/v1/tasks/{task_id}").get_json()
    en = clerk.get(f"/api/v1/tasks/{task_id}", query_string={"lang": "en"}).get_json()
    assert zh["form"]["title"] == "请假申请" and en["form"]["title"] == "Leave request"
    assert en["form"]["properties"]["kind"]["title"] == "Kind of leave"
    assert [o["title"] for o in en["form"]["properties"]["kind"]["oneOf"]] == ["Annual leave", "病假"]
    assert en["form"]["properties"]["reason"]["description"] == "Say why"
    assert zh["ui_schema"]["reason"]["ui:help"] == "可以不填"
    assert en["ui_schema"]["reason"]["ui:help"] == "May be left empty"
    for shape in (zh, en):
        assert "_en\"" not in json.dumps(shape["form"]) + json.dumps(shape["ui_schema"])

    r = clerk.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {}}, query_string={"lang": "en"})
    assert r.status_code == 422
    assert {d["field"]: d["message"] for d in r.get_json()["details"]}["kind"] == "Kind of leave is required"
    page = clerk.client.get(f"/tasks/{task_id}?lang=en", headers=clerk._headers())
    assert page.status_code == 200 and "Kind of leave" in page.get_data(as_text=True)


def _english_property(name: str, value: str) -> str:
    return f'<spiffworkflow:property name="{name}" value="{value}" />'


def test_a_designers_diagram_speaks_english_where_the_designer_wrote_it(login, browser):  # noqa: F811
    """Issue 17 (R-WF-1, UI language): the process's `name_en`/`description_en`, a step's
    `name_en` and its `instructions_en` (a template, rendered with the task's data like the Chinese
    one) are what English readers see in the API, the start page, the inbox, the task page and the
    request's timeline; Chinese readers keep the Chinese; a name without English stays as written."""
    process_props = _english_property("name_en", "Leave") + _english_property("description_en", "Ask for days off")
    task = ('<bpmn:userTask id="ask" name="填写请假单"><bpmn:extensionElements>'
            '<spiffworkflow:instructionsForEndUser>{{ who }} 请填写请假天数</spiffworkflow:instructionsForEndUser>'
            '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator" />'
            + _english_property("name_en", "Fill in the leave form")
            + _english_property("instructions_en", "{{ who }}, say how many days")
            + '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')
    xml = (HEAD + '<bpmn:process id="leave_names" name="请假" isExecutable="true"><bpmn:documentation>申请休假</bpmn:documentation>'
           f'<bpmn:extensionElements><spiffworkflow:properties>{process_props}</spiffworkflow:properties></bpmn:extensionElements>'
           '<bpmn:startEvent id="start" /><bpmn:scriptTask id="hello" name="问候"><bpmn:script>who = "王芳"</bpmn:script>'
           f'</bpmn:scriptTask>{task}<bpmn:userTask id="later" name="销假"><bpmn:extensionElements>'
           '<spiffworkflow:instructionsForEndUser>销假</spiffworkflow:instructionsForEndUser><spiffworkflow:properties>'
           '<spiffworkflow:property name="performers" value="initiator" /></spiffworkflow:properties>'
           '</bpmn:extensionElements></bpmn:userTask>'
           '<bpmn:endEvent id="end" /><bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="hello" />'
           '<bpmn:sequenceFlow id="f2" sourceRef="hello" targetRef="ask" />'
           '<bpmn:sequenceFlow id="f3" sourceRef="ask" targetRef="later" />'
           '<bpmn:sequenceFlow id="f4" sourceRef="later" targetRef="end" /></bpmn:process></bpmn:definitions>')
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": [(io.BytesIO(xml.encode()), "leave_names.bpmn")]},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    clerk = login("clerk")
    instance = clerk.post("/api/v1/process-instances", json={"process_key": "leave_names"}).get_json()
    task_id = clerk.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]["id"]

    zh = clerk.get(f"/api/v1/tasks/{task_id}").get_json()
    en = clerk.get(f"/api/v1/tasks/{task_id}", query_string={"lang": "en"}).get_json()
    assert (zh["name"], zh["instructions"]) == ("填写请假单", "王芳 请填写请假天数")
    assert (en["name"], en["instructions"]) == ("Fill in the leave form", "王芳, say how many days")

    reader = browser("clerk")
    start = reader.get("/start?lang=en").get_data(as_text=True)
    assert "Leave" in start and "Ask for days off" in start and "申请休假" not in start
    assert "申请休假" in reader.get("/start?lang=zh").get_data(as_text=True)
    inbox = reader.get("/tasks?lang=en").get_data(as_text=True)
    assert "Fill in the leave form" in inbox and "填写请假单" not in inbox
    page = reader.get(f"/tasks/{task_id}?lang=en").get_data(as_text=True)
    assert "Fill in the leave form" in page and "王芳, say how many days" in page and "请填写请假天数" not in page

    done = clerk.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {}}, query_string={"lang": "en"}).get_json()
    names = {h["element_id"]: h["name"] for h in clerk.get(f"/api/v1/process-instances/{done['id']}",
                                                           query_string={"lang": "en"}).get_json()["history"]}
    assert names["ask"] == "Fill in the leave form" and names["hello"] == "问候"  # no English given: as written
    story = reader.get(f"/requests/{done['id']}?lang=en").get_data(as_text=True)
    assert "Leave #" in story and "Fill in the leave form" in story
