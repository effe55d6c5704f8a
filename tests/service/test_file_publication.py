"""The file publication procedure through the HTTP API, along every path (R-DOC-4, R-WF-2,
R-SEC-4): the author submits, the head of the document's department checks content and
security level, the platform management department approves (the confidentiality officer for
秘密 and above), and the platform publishes the reviewed version to its audience."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.service.documents_helpers import API, new_version, set_clearance, uploaded
from tests.service.flows import complete as _complete


@pytest.fixture
def officer(app, org):
    """A confidentiality officer (保密员) in the platform management department."""
    from service import org as org_module

    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org_module.create_user(s, "secrecy", PASSWORD, "PLATFORM", groups=["confidentiality_officer"],
                               full_name="保密员 孙")
        s.commit()
        s.close()
    return "secrecy"


def _tasks(api, **params):
    r = api.get("/api/v1/tasks", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def _only_task(api, instance_id):
    items = _tasks(api, instance_id=instance_id)
    assert len(items) == 1, items
    return items[0]


def _submit(login, document_id, audience="all", author="clerk"):
    api = login(author)
    r = api.post("/api/v1/process-instances", json={"process_key": "file_publication",
                                                    "business_key": f"DOC-{document_id}"})
    assert r.status_code == 201, r.get_json()
    instance = r.get_json()
    task = _only_task(api, instance["id"])
    assert task["element_id"] == "submit_publication"
    form = api.get(f"/api/v1/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["document_id"]["title"] == "文件编号"
    result = _complete(api, task, {"document_id": document_id, "audience": audience, "reason": "供全体参考"})
    return instance["id"], result


def _decide(login, who, instance_id, element_id, decision, opinion=""):
    api = login(who)
    task = _only_task(api, instance_id)
    assert task["element_id"] == element_id, task
    return _complete(api, task, {"decision": decision, "opinion": opinion})


def _readable(login, who, document_id) -> bool:
    return login(who).get(f"{API}/{document_id}").status_code == 200


def test_internal_document_is_published_after_head_and_platform_approve(login):
    """R-DOC-4, R-WF-2: department head, then the platform management department; the reviewed
    version is published to everyone, who can then read it."""
    document = uploaded(login("clerk"), "关于开展无纸化办公的通知".encode(), title="无纸化办公通知")
    assert not _readable(login, "fin_head", document["id"])
    instance_id, _ = _submit(login, document["id"])
    # The head reviews what they may now read; the platform has nothing yet.
    assert _tasks(login("platform"), instance_id=instance_id) == []
    task = _only_task(login("office_head"), instance_id)
    assert "无纸化办公通知" in task["instructions"] and "内部" in task["instructions"]
    assert login("office_head").get(f"{API}/{document['id']}/content").status_code == 200
    _decide(login, "office_head", instance_id, "dept_head_review", "approve", "内容和密级无误")
    assert not _readable(login, "office_head", document["id"])  # the review is over
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert result["state"] == "completed" and "end_published" in result["completed_elements"]

    published = login("fin_head").get(f"{API}/{document['id']}").get_json()
    assert published["published_at"] and published["audience"] == "all"
    assert document["id"] in [d["id"] for d in login("fin_head").get(f"{API}?published=true").get_json()["items"]]
    decisions = [(h["element_id"], h["user"], h["decision"]) for h in result["history"] if h["decision"]]
    assert decisions == [("dept_head_review", "office_head", "approve"), ("platform_review", "platform", "approve")]


def test_secret_document_goes_to_the_confidentiality_officer_and_stays_behind_clearances(login, officer):
    """R-DOC-4, R-SEC-4: for 秘密 and above the confidentiality officer approves, not the platform;
    once published, only members of the audience with the clearance see it."""
    set_clearance(login, "clerk", "秘密")
    set_clearance(login, "office_head", "秘密")
    set_clearance(login, officer, "机密")
    set_clearance(login, "fin_admin", "秘密")
    document = uploaded(login("clerk"), "秘密级工作方案".encode(), title="秘密方案", security_level="秘密")
    instance_id, _ = _submit(login, document["id"])
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    assert _tasks(login("platform"), instance_id=instance_id) == []
    assert login(officer).get(f"{API}/{document['id']}/content").status_code == 200
    result = _decide(login, officer, instance_id, "secrecy_review", "approve", "发布范围合适")
    assert "end_published" in result["completed_elements"]
    assert _readable(login, "fin_admin", document["id"])
    assert not _readable(login, "fin_head", document["id"])  # 内部 clearance: the level still wins


def test_returned_submission_is_amended_and_resubmitted(login):
    """R-WF-2: a return carries its reason back to the author, who reclassifies and resubmits."""
    document = uploaded(login("clerk"), b"draft for everyone", title="对外口径")
    instance_id, _ = _submit(login, document["id"], audience="department")
    _decide(login, "office_head", instance_id, "dept_head_review", "return", "密级应定为公开")
    author = login("clerk")
    task = _only_task(author, instance_id)
    assert task["element_id"] == "amend_submission"
    assert author.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"] == "密级应定为公开"
    assert new_version(author, document["id"], change_note="改为公开", security_level="公开").status_code == 201
    _complete(author, task, {"action": "resubmit", "document_id": document["id"], "audience": "department",
                             "reason": "已按意见调整密级"})
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert "end_published" in result["completed_elements"]
    detail = login("office_admin").get(f"{API}/{document['id']}").get_json()
    assert detail["audience"] == "department" and detail["security_level"] == "公开" and detail["current_version"] == 2
    assert _readable(login, "clerk", document["id"]) and not _readable(login, "fin_head", document["id"])


def test_platform_returns_and_the_author_withdraws(login):
    """R-WF-2: after a return the author may withdraw; nothing is published."""
    document = uploaded(login("clerk"), b"maybe later")
    instance_id, _ = _submit(login, document["id"])
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    _decide(login, "platform", instance_id, "platform_review", "return", "请补充发布依据")
    author = login("clerk")
    task = _only_task(author, instance_id)
    assert author.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"] == "请补充发布依据"
    result = _complete(author, task, {"action": "withdraw", "document_id": document["id"], "audience": "all",
                                      "reason": "暂不发布"})
    assert result["state"] == "completed" and "end_withdrawn" in result["completed_elements"]
    assert not author.get(f"{API}/{document['id']}").get_json()["published_at"]


@pytest.mark.parametrize("rejecter", ["office_head", "platform", "secrecy"])
def test_any_reviewer_may_reject(login, officer, rejecter):
    """R-WF-2: the head, the platform or the confidentiality officer may reject, with a reason."""
    level = "秘密" if rejecter == "secrecy" else "内部"
    for who in ("clerk", "office_head", officer):
        set_clearance(login, who, "秘密")
    document = uploaded(login("clerk"), b"not to be published", security_level=level)
    instance_id, _ = _submit(login, document["id"])
    if rejecter == "office_head":
        result = _decide(login, "office_head", instance_id, "dept_head_review", "reject", "不宜发布")
    else:
        _decide(login, "office_head", instance_id, "dept_head_review", "approve")
        step = "secrecy_review" if rejecter == "secrecy" else "platform_review"
        r = login(rejecter).post(f"/api/v1/tasks/{_only_task(login(rejecter), instance_id)['id']}/complete",
                                 json={"data": {"decision": "reject"}})
        assert r.status_code == 422  # a rejection needs an opinion
        result = _decide(login, rejecter, instance_id, step, "reject", "不宜发布")
    assert "end_rejected" in result["completed_elements"] and "publish_task" not in result["completed_elements"]
    assert not login("clerk").get(f"{API}/{document['id']}").get_json()["published_at"]


def test_core_secret_and_foreign_documents_are_refused_at_submission(login):
    """R-DOC-4: a 核心机密 document is never published; nobody submits a document they cannot edit.
    The author gets the reason and may fix the request or withdraw."""
    set_clearance(login, "clerk", "核心机密")
    core = uploaded(login("clerk"), b"core", security_level="核心机密")
    instance_id, result = _submit(login, core["id"])
    assert "check_task" in result["completed_elements"] and "dept_head_review" not in result["active_elements"]
    author = login("clerk")
    task = _only_task(author, instance_id)
    assert task["element_id"] == "amend_submission"
    assert author.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"] == "核心机密文件不得发布或共享。"

    # A document the author may not read is refused by the form's document field (attachments.check),
    # naming the field, before the procedure sees it.
    foreign = uploaded(login("fin_head"), b"finance only")
    r = author.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {
        "action": "resubmit", "document_id": foreign["id"], "audience": "all", "reason": "换一份"}})
    assert r.status_code == 422 and [d["field"] for d in r.get_json()["details"]] == ["document_id"]
    assert "文件编号" in r.get_json()["details"][0]["message"]
    result = _complete(author, task, {"action": "withdraw", "document_id": core["id"], "audience": "all",
                                      "reason": "撤回"})
    assert "end_withdrawn" in result["completed_elements"]


def test_a_document_changed_during_review_is_not_published(login):
    """R-DOC-4, R-DOC-5: only the reviewed version is published; a newer one goes back to the author."""
    clerk = login("clerk")
    document = uploaded(clerk, b"reviewed text")
    instance_id, _ = _submit(login, document["id"])
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    assert new_version(clerk, document["id"], b"unreviewed text", change_note="审批中修改").status_code == 201
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert "publish_task" in result["completed_elements"] and "end_published" not in result["completed_elements"]
    task = _only_task(clerk, instance_id)
    reason = clerk.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["return_reason"]
    assert reason == "审核期间文件已更新为第 2 版,请重新提交发布。"
    _complete(clerk, task, {"action": "resubmit", "document_id": document["id"], "audience": "all", "reason": "第二版"})
    _decide(login, "office_head", instance_id, "dept_head_review", "approve")
    result = _decide(login, "platform", instance_id, "platform_review", "approve")
    assert "end_published" in result["completed_elements"]
    assert login("fin_head").get(f"{API}/{document['id']}/content").data == b"unreviewed text"

    # A version after publication withdraws it until it is published again.
    assert new_version(clerk, document["id"], b"third", change_note="发布后修改").status_code == 201
    assert not _readable(login, "fin_head", document["id"])
