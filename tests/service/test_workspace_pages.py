"""Drafts, the diagram, notifications and the language setting in the workspace (issue 6, R-WF-2, R-WF-3)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from sqlalchemy import select

from tests.service import test_pages
from tests.service.test_account_application import APPLICATION
from tests.service.test_pages import _fill_application, _start_application, _task_link, form_fields, text

browser = test_pages.browser  # the signed-in people of the page tests
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def _rows(app, model, **where):
    with app.app_context():
        from service import db

        s = db.session()
        return s.scalars(select(model).filter_by(**where)).all()


def test_a_half_filled_form_is_saved_as_a_draft_and_resumed_by_its_author_only(app, browser):
    """R-WF-3: "保存草稿" keeps what was typed (no validation) for this task and person; it goes on completion."""
    from service.workspace_models import TaskDraft

    admin = browser("office_admin")
    task_url = _start_application(admin)
    page = text(admin.get(task_url))
    assert "保存草稿" in page
    half = [("full_name", "马小云"), ("username", "X!"), ("roles.present", "1"), ("roles", "user"), ("intent", "draft")]
    r = admin.post(task_url, half)
    assert r.status_code == 302 and r.headers["Location"] == task_url
    page = text(admin.get(task_url))
    assert "草稿已保存" in page and 'id="draft-note"' in page
    assert 'value="马小云"' in page and 'value="X!"' in page  # kept as typed, not validated
    # Only its author sees it: the system administrator may open the task page, not the draft.
    page = text(browser("sysadmin").get(task_url))
    assert 'value="马小云"' not in page and "draft-note" not in page
    assert browser("sysadmin").post(task_url, half).status_code == 403
    # Saving again replaces it; a draft too large is refused without a 500.
    admin.post(task_url, half[:1] + [("full_name", "马小云二"), ("intent", "draft")])
    assert len(_rows(app, TaskDraft)) == 1
    assert admin.post(task_url, [("reason", "x" * 70_000), ("intent", "draft")]).status_code == 422
    # Completing the task deletes the draft.
    r = admin.post(task_url, form_fields(APPLICATION))
    assert r.status_code == 302, text(r)
    assert _rows(app, TaskDraft) == []


def test_a_draft_can_be_discarded(app, browser):
    from service.workspace_models import TaskDraft

    admin = browser("office_admin")
    task_url = _start_application(admin)
    admin.get(task_url)
    admin.post(task_url, [("full_name", "马小云"), ("intent", "draft")])
    assert "删除草稿" in text(admin.get(task_url))
    admin.post(task_url, [("intent", "discard")])
    assert _rows(app, TaskDraft) == [] and 'value="马小云"' not in text(admin.get(task_url))


def test_the_diagram_marks_where_the_request_is_and_its_xml_is_served_only_to_who_may_see_it(browser):
    """R-WF-2: task page and request detail show the diagram with current and completed elements."""
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    task_url = _task_link(text(head.get("/tasks")), "部门负责人审核")
    page = text(head.get(task_url))
    instance_id = re.search(r'data-bpmn-viewer="/requests/(\d+)/diagram.xml"', page).group(1)
    assert 'data-current="dept_head_review"' in page
    completed = re.search(r'data-completed="([^"]*)"', page).group(1).split()
    assert "start" in completed and "fill_application" in completed
    assert "build/viewer.js" in page
    detail = text(admin.get(f"/requests/{instance_id}"))
    assert f'data-bpmn-viewer="/requests/{instance_id}/diagram.xml"' in detail
    r = admin.get(f"/requests/{instance_id}/diagram.xml")
    assert r.status_code == 200 and r.mimetype == "application/xml" and b'id="dept_head_review"' in r.data
    assert browser("fin_head").get(f"/requests/{instance_id}/diagram.xml").status_code == 404
    assert test_pages.Browser(head.client.application).get(f"/requests/{instance_id}/diagram.xml").status_code == 302


def test_notifications_page_lists_marks_read_and_links_to_the_task(browser):
    """R-WF-2: a new task is announced; opening the notice marks it read and leads to the task."""
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    home = text(head.get("/"))
    assert re.search(r'消息通知 <span class="nav-count">1</span>', home)
    page = text(head.get("/notifications"))
    assert "新待办：部门负责人审核" in page
    open_url = re.search(r'action="(/notifications/\d+/open)"', page).group(1)
    r = head.post(open_url)
    assert r.status_code == 302 and re.fullmatch(r"/tasks/[0-9a-f-]{36}", r.headers["Location"])
    assert 'class="nav-count"' not in text(head.get("/notifications"))
    assert "暂无消息" in text(head.get("/notifications?show=unread"))
    # Someone else's notification is not found.
    assert browser("clerk").post(open_url).status_code == 404


def test_mark_all_read(browser):
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    head.get("/notifications")
    assert head.post("/notifications/read-all").status_code == 302
    assert 'class="nav-count"' not in text(head.get("/notifications"))


def test_the_language_setting_is_kept_in_the_profile(app, browser):
    """The language standard (no regulation clause): the profile's language wins over the cookie; ?lang= still wins for one page."""
    from service.models import User

    clerk = browser("clerk")
    page = text(clerk.get("/settings"))
    assert "界面语言" in page and "English" in page
    r = clerk.post("/settings", {"locale": "en"})
    assert r.status_code == 302
    assert _rows(app, User, username="clerk")[0].locale == "en"
    assert "Your settings have been saved." in text(clerk.get("/settings"))
    # A new browser (no cookie) of the same person is in English; a zh cookie does not override.
    again = browser("clerk")
    again.client.set_cookie("lang", "zh")
    assert '<html lang="en">' in text(again.get("/tasks"))
    assert '<html lang="zh-CN">' in text(again.get("/tasks?lang=zh"))
    assert clerk.post("/settings", {"locale": "fr"}).status_code == 422
    clerk.post("/settings", {"locale": ""})
    assert _rows(app, User, username="clerk")[0].locale is None


class _Text(HTMLParser):
    """The text a person sees, without elements marked as another language (the 中文 switch)."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skip: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        void = tag in ("input", "br", "img", "meta", "link")
        if self.skip or tag in ("script", "style") or (attrs.get("lang") or "").startswith("zh"):
            if not void:
                self.skip.append(tag)
            return
        for name in ("aria-label", "title", "placeholder", "alt"):
            if attrs.get(name):
                self.parts.append(attrs[name])

    def handle_endtag(self, tag):
        if self.skip and self.skip[-1] == tag:
            self.skip.pop()

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def user_data(app) -> list[str]:
    """Names people and designers gave (processes, forms, departments, people): not interface text."""
    import json

    from service.models import Department, DeploymentFile, InstanceStep, OpenTask, ProcessDefinition, User
    from service.pages.fields import labels

    out = [d.name for d in _rows(app, ProcessDefinition)] + [d.description for d in _rows(app, ProcessDefinition)]
    out += [d.category for d in _rows(app, ProcessDefinition)]  # the start page groups by it
    out += [d.name for d in _rows(app, Department)] + [u.full_name for u in _rows(app, User)]
    out += [t.name for t in _rows(app, OpenTask)] + [t.instructions for t in _rows(app, OpenTask)]
    out += [st.name for st in _rows(app, InstanceStep)]
    schemas = [json.loads(f.content) for f in _rows(app, DeploymentFile, kind="form")]
    for schema in schemas:
        out += [schema.get("title", ""), schema.get("description", "")]
        for node in (schema.get("properties") or {}).values():
            out += [node.get("title", ""), node.get("description", "")]
            out += [o.get("title", "") for o in node.get("oneOf", []) + (node.get("items") or {}).get("oneOf", [])]
    out += [str(label) for label in labels(schemas).values()]
    for f in _rows(app, DeploymentFile):
        if f.name.endswith(".uischema.json"):
            out += re.findall(r'"ui:help":\s*"([^"]*)"', f.content)
        out += re.findall(r"instructionsForEndUser>([^<]*)<", f.content)  # the designers' instructions
    out += list(APPLICATION.values())[:-2] + [APPLICATION["reason"]]
    return sorted({s for s in out if isinstance(s, str) and s}, key=len, reverse=True)


def test_english_leaves_no_chinese_on_the_main_pages(app, browser):
    """The language standard (no regulation clause): with ?lang=en and with the profile setting, every interface string is English."""
    admin = browser("office_admin")
    _fill_application(admin)
    head = browser("office_head")
    task_url = _task_link(text(head.get("/tasks")), "部门负责人审核")
    pages = ["/", "/tasks", "/start", "/requests", "/notifications", "/settings", task_url, "/requests/1",
             "/requests/1?lang=en"]
    data = user_data(app)

    def leftovers(b, url) -> list[str]:
        seen = _visible_text(b.get(url).get_data(as_text=True))
        for value in data:
            seen = seen.replace(value, " ")
        return CJK.findall(seen) and [line for line in seen.splitlines() if CJK.search(line)]

    head.get("/?lang=en")  # the cookie
    for url in pages:
        assert not leftovers(head, url), (url, leftovers(head, url))
    head.get("/?lang=zh")
    head.post("/settings", {"locale": "en"})
    for url in pages:
        assert not leftovers(head, url), ("profile", url, leftovers(head, url))
    visitor = test_pages.Browser(app)
    for url in ("/signin?lang=en", "/apply?lang=en", "/apply/track?lang=en"):
        assert not leftovers(visitor, url), (url, leftovers(visitor, url))
