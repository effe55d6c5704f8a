""""My tasks" as the union of "assigned to me" and "offered to me or my groups, unclaimed", in keyset
pages with a capped count (issue 16, R-WF-2)."""
from __future__ import annotations

import io

from tests.service.studio_helpers import HEAD, user_task
from tests.service.test_pages import Browser


def _one_task_process(key: str, performers: str, due: bool = False) -> bytes:
    task = user_task("do", "办理", performers)
    if due:  # the deadline is the instance's `deadline`
        task = task.replace("</spiffworkflow:properties>",
                            '<spiffworkflow:property name="due" value="deadline" /></spiffworkflow:properties>')
    body = ('<bpmn:startEvent id="start" />\n' + task + '<bpmn:endEvent id="end" />\n'
            '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="do" />\n'
            '<bpmn:sequenceFlow id="f2" sourceRef="do" targetRef="end" />\n')
    return (HEAD + f'<bpmn:process id="{key}" name="报送" isExecutable="true">\n{body}</bpmn:process>\n'
            '</bpmn:definitions>\n').encode()


def _deploy(api, key: str, performers: str, due: bool = False) -> None:
    r = api.client.post("/api/v1/process-definitions",
                        data={"files": [(io.BytesIO(_one_task_process(key, performers, due)), f"{key}.bpmn")]},
                        content_type="multipart/form-data", headers=api._headers())
    assert r.status_code == 201, r.get_json()


def _start(api, key: str, times: int) -> None:
    for _ in range(times):
        r = api.post("/api/v1/process-instances", json={"process_key": key})
        assert r.status_code == 201, r.get_json()


def _tasks(api, **params) -> dict:
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _setup(login):
    admin = login("sysadmin")
    _deploy(admin, "own_report", "initiator")
    _deploy(admin, "group_report", "group:supervisor")
    clerk, supervisor = login("clerk"), login("supervisor")
    _start(clerk, "own_report", 2)
    _start(clerk, "group_report", 4)
    _start(supervisor, "own_report", 1)
    return clerk, supervisor


def test_my_tasks_are_mine_and_my_groups_unclaimed_ones_each_once(login):
    """R-WF-2: a claimed group task moves from "offered" to "assigned" and is listed once."""
    clerk, supervisor = _setup(login)
    assert _tasks(clerk)["total"] == 2
    mine = _tasks(supervisor)
    assert mine["total"] == 5 and len({t["id"] for t in mine["items"]}) == 5
    offered = [t for t in mine["items"] if t["process_key"] == "group_report"]
    r = supervisor.post(f"/api/v1/tasks/{offered[0]['id']}/claim", json={})
    assert r.status_code == 200, r.get_json()
    after_claim = _tasks(supervisor)
    assert after_claim["total"] == 5 and len({t["id"] for t in after_claim["items"]}) == 5
    assert [t["id"] for t in _tasks(supervisor, scope="assigned")["items"]] == [offered[0]["id"]]
    assert _tasks(supervisor, scope="unclaimed")["total"] == 4


def test_keyset_pages_walk_the_whole_list_in_order_without_repeats(login):
    """R-WF-2: following `next` one task at a time yields exactly the one-page list, in its order."""
    _clerk, supervisor = _setup(login)
    whole = [t["id"] for t in _tasks(supervisor)["items"]]
    walked, cursor = [], None
    for _ in range(10):
        page = _tasks(supervisor, limit=2, **({"after": cursor} if cursor else {}))
        walked += [t["id"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert walked == whole and len(whole) == 5
    # offset paging, published before, still answers the same rows.
    assert [t["id"] for t in _tasks(supervisor, limit=2, offset=2)["items"]] == whole[2:4]


def test_tasks_of_two_groups_interleave_in_page_order_each_once_until_claimed(app, login, frozen):
    """R-WF-2, issue 16: each group's unclaimed tasks are read in page order on their own and merged —
    soonest deadline first, a tie broken by creation time, tasks without a deadline last; a task
    offered to both of my groups comes once; a page by cursor carries on without gap or repeat; and
    a claimed task leaves every other candidate's list."""
    from service import org as org_module
    from tests.conftest import PASSWORD

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "both", PASSWORD, "HQ", "user", ["supervisor", "designer"])
        s.commit()
        s.close()
    admin = login("sysadmin")
    for key, performers, due in (("sup_due", "group:supervisor", True), ("des_due", "group:designer", True),
                                 ("sup_plain", "group:supervisor", False),
                                 ("shared", "group:supervisor,group:designer", False)):
        _deploy(admin, key, performers, due)
    clerk = login("clerk")
    instances = {}
    for label, key, deadline in (("s1", "sup_due", "2026-12-05T09:00:00+08:00"),
                                 ("d1", "des_due", "2026-12-03T09:00:00+08:00"),
                                 ("both", "shared", None),
                                 ("s2", "sup_due", "2026-12-04T09:00:00+08:00"),
                                 ("d2", "des_due", "2026-12-04T09:00:00+08:00"),
                                 ("s3", "sup_plain", None),
                                 ("d3", "des_due", "2026-12-05T09:00:00+08:00")):
        frozen.advance(minutes=1)  # each created a minute after the one before
        data = {"deadline": deadline} if deadline else {}
        r = clerk.post("/api/v1/process-instances", json={"process_key": key, "data": data})
        assert r.status_code == 201, r.get_json()
        instances[r.get_json()["id"]] = label

    def listed(api, **params):
        return [instances[t["instance_id"]] for t in _tasks(api, **params)["items"]]

    member = login("both")
    expected = ["d1", "s2", "d2", "s1", "d3", "both", "s3"]
    assert listed(member) == expected and listed(member, scope="unclaimed") == expected
    assert _tasks(member)["total"] == 7
    walked, cursor = [], None
    for _ in range(5):
        page = _tasks(member, limit=3, **({"after": cursor} if cursor else {}))
        walked += [instances[t["instance_id"]] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert walked == expected
    assert listed(member, limit=3, offset=3) == expected[3:6]

    office_admin, supervisor = login("office_admin"), login("supervisor")
    assert listed(supervisor) == ["s2", "s1", "both", "s3"] and listed(office_admin) == ["d1", "d2", "d3", "both"]
    shared = next(t["id"] for t in _tasks(member)["items"] if instances[t["instance_id"]] == "both")
    assert office_admin.post(f"/api/v1/tasks/{shared}/claim", json={}).status_code == 200
    assert listed(member) == ["d1", "s2", "d2", "s1", "d3", "s3"]
    assert listed(supervisor, scope="unclaimed") == ["s2", "s1", "s3"]
    assert listed(office_admin, scope="assigned") == ["both"]
    assert listed(office_admin, scope="unclaimed") == ["d1", "d2", "d3"]


def test_a_forged_page_link_is_refused_naming_the_field(login):
    """Bad input is a 422 naming `after`, never a 500."""
    _clerk, supervisor = _setup(login)
    r = supervisor.get("/api/v1/tasks", query_string={"after": "not-a-cursor!"})
    assert r.status_code == 422
    assert r.get_json()["details"][0]["field"] == "after"


def test_the_count_stops_at_the_cap_and_says_so(login, monkeypatch):
    """The count is capped (cheap at any size); past the cap the answer says there are more."""
    from service import inbox

    _clerk, supervisor = _setup(login)
    monkeypatch.setattr(inbox, "COUNT_CAP", 3)
    answer = _tasks(supervisor)
    assert answer["total"] == 3 and answer["total_capped"] is True and len(answer["items"]) == 5


def test_the_inbox_page_links_to_the_next_page(app, login, monkeypatch):
    """R-WF-2: the inbox shows a page at a time with a 下一页 link that carries on where it stopped."""
    from service.pages import tasks as task_pages

    _setup(login)
    monkeypatch.setattr(task_pages, "PAGE_SIZE", 3)
    browser = Browser(app)
    browser.sign_in("supervisor")
    first = browser.get("/tasks").get_data(as_text=True)
    assert first.count("<li class=\"task") == 3 and "下一页" in first
    link = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = browser.get(link).get_data(as_text=True)
    assert second.count("<li class=\"task") == 2 and "下一页" not in second and "第一页" in second


def test_the_inbox_search_finds_tasks_by_their_process_name(app, login):
    """R-WF-2: the search also matches the process's name (on the instance), not only the task's."""
    _setup(login)
    browser = Browser(app)
    browser.sign_in("supervisor")
    found = browser.get("/tasks", query_string={"q": "报送"}).get_data(as_text=True)
    assert found.count("<li class=\"task") == 5
    nothing = browser.get("/tasks", query_string={"q": "差旅"}).get_data(as_text=True)
    assert nothing.count("<li class=\"task") == 0


def test_a_filtered_list_is_the_unfiltered_list_filtered_for_each_caller(login):
    """R-WF-2, issue 16: a list filtered by instance or process (one statement built once per shape,
    with the caller and the filters as parameters) gives each caller exactly their own tasks —
    assigned, offered to them or to their groups — in the unfiltered list's order, per scope and
    page; one caller's list never shows through in the next one's."""
    clerk, supervisor = _setup(login)
    office_admin = login("office_admin")
    claimed = next(t for t in _tasks(supervisor)["items"] if t["process_key"] == "group_report")
    assert supervisor.post(f"/api/v1/tasks/{claimed['id']}/claim", json={}).status_code == 200
    for api in (supervisor, clerk, office_admin, supervisor):
        for scope in ("mine", "assigned", "unclaimed"):
            whole = _tasks(api, scope=scope)["items"]
            for key in ("own_report", "group_report", "nobodys_report"):
                wanted = [t["id"] for t in whole if t["process_key"] == key]
                got = _tasks(api, scope=scope, process_key=key)
                assert [t["id"] for t in got["items"]] == wanted and got["total"] == len(wanted), (scope, key)
                if len(wanted) > 1:
                    assert [t["id"] for t in _tasks(api, scope=scope, process_key=key, limit=1, offset=1)["items"]] \
                        == wanted[1:2]
                    walked, cursor = [], None
                    for _ in range(len(wanted) + 1):
                        page = _tasks(api, scope=scope, process_key=key, limit=1, **({"after": cursor} if cursor else {}))
                        assert page["total"] == len(wanted), (scope, key, page)
                        walked += [t["id"] for t in page["items"]]
                        cursor = page["next"]
                        if cursor is None:
                            break
                    assert walked == wanted, (scope, key)
            for task in whole:
                one = _tasks(api, scope=scope, instance_id=task["instance_id"])["items"]
                assert [t["id"] for t in one] == [task["id"]], (scope, task)
    # The supervisor's claimed task is assigned; its instance is not on the clerk's list at all.
    assert _tasks(clerk, instance_id=claimed["instance_id"])["items"] == []
    assert [t["id"] for t in _tasks(supervisor, scope="assigned", instance_id=claimed["instance_id"])["items"]] \
        == [claimed["id"]]
    assert _tasks(supervisor, scope="unclaimed", instance_id=claimed["instance_id"])["items"] == []
    # Everybody's list, as the system administrator reads it, pages by cursor the same way.
    admin = login("sysadmin")
    everything = _tasks(admin, scope="all", process_key="group_report")
    first = _tasks(admin, scope="all", process_key="group_report", limit=2)
    rest = _tasks(admin, scope="all", process_key="group_report", limit=2, after=first["next"])
    assert [t["id"] for t in first["items"] + rest["items"]] == [t["id"] for t in everything["items"]][:4]
    assert first["total"] == rest["total"] == everything["total"] == 4
