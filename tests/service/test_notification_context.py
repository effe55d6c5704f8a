"""Notifications that say what and who (issue 17): the request (process, number, business key),
the applicant, the step and the deadline; read once the task is done, wherever it was done; the
initiator told when a reviewer decides and when the request finishes; the e-mail says the same."""
from __future__ import annotations

from email import message_from_bytes
from email.header import decode_header, make_header

from sqlalchemy import update

from service.models import User
from tests.service.flows import complete, only_task
from tests.service.test_cancel_and_mail import _SmtpSink
from tests.service.test_fault_report import HANDLED, REPORT
from tests.service.test_pages import browser, text  # noqa: F401  (the browser fixture)


def _names(app, **full_names) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        for username, full_name in full_names.items():
            s.execute(update(User).where(User.username == username).values(full_name=full_name))
        s.commit()
        s.close()


def _email(app, username: str, address: str) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        s.execute(update(User).where(User.username == username).values(email=address))
        s.commit()
        s.close()


def _notes(api) -> list[dict]:
    return api.get("/api/v1/notifications").get_json()["items"]


def _report(login, key="GZ-2026-017") -> int:
    clerk = login("clerk")
    r = clerk.post("/api/v1/process-instances", json={"process_key": "fault_report", "business_key": key})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    complete(clerk, only_task(clerk, instance_id=instance_id), REPORT)
    return instance_id


def test_a_task_notice_names_the_request_the_applicant_and_the_step(app, login):
    """R-WF-2 (names, not codes): the head of the platform management department reads who reported what, in
    which request, before opening it; the structured context is in the API too."""
    _names(app, clerk="张文书")
    instance_id = _report(login)
    [note] = _notes(login("platform"))
    assert note["kind"] == "task" and note["read"] is False
    assert note["message"] == f"新待办：诊断分级 — 故障报告与处理 #{instance_id} · GZ-2026-017；申请人：张文书"
    assert note["context"] == {"request": f"故障报告与处理 #{instance_id}", "key": "GZ-2026-017", "applicant": "张文书"}


def test_the_notice_is_read_once_the_task_is_done_for_everyone_it_went_to(app, login):
    """R-WF-2: completing the task (here through the API) marks its notices read for every member of
    the group it was offered to; the next step's notice carries its deadline."""
    instance_id = _report(login)
    platform, sysadmin = login("platform"), login("sysadmin")
    assert [n["read"] for n in _notes(platform)] == [False] and [n["read"] for n in _notes(sysadmin)] == [False]
    complete(platform, only_task(platform, instance_id=instance_id),
             {"triage_action": "handle", "severity": "general", "diagnosis": "疑似数据库连接问题"})
    for api in (platform, sysadmin):
        triage, handle = sorted(_notes(api), key=lambda n: n["id"])
        assert triage["read"] is True and handle["read"] is False
        assert handle["message"].startswith("新待办：排除故障并记录 — ") and "截止 " in handle["message"]
        assert handle["context"]["due"]
    assert platform.get("/api/v1/notifications", query_string={"unread": True}).get_json()["unread"] == 1


def test_the_initiator_is_told_when_the_request_finishes(app, login):
    """R-WF-2 (`/help` promises “申请已办结”): the reporter is told when the fault is closed."""
    _names(app, platform="平台负责人")
    instance_id = _report(login)
    platform = login("platform")
    complete(platform, only_task(platform, instance_id=instance_id),
             {"triage_action": "handle", "severity": "general", "diagnosis": "疑似数据库连接问题"})
    handle = only_task(platform, instance_id=instance_id)
    assert platform.post(f"/api/v1/tasks/{handle['id']}/claim").status_code == 200
    complete(platform, handle, HANDLED)
    clerk = login("clerk")
    complete(clerk, only_task(clerk, instance_id=instance_id), {"confirmation": "resolved"})
    finished = [n for n in _notes(clerk) if n["kind"] == "finished"]
    assert [n["message"] for n in finished] == [f"申请已办结（故障已解决） — 故障报告与处理 #{instance_id} · GZ-2026-017；申请人：clerk"]
    assert finished[0]["read"] is False and finished[0]["instance_id"] == instance_id
    # The reporter's own confirmation task notice is read: they completed it.
    assert all(n["read"] for n in _notes(clerk) if n["kind"] == "task")


def test_the_initiator_hears_of_an_approval_and_of_a_rejection(app, login):
    """R-WF-2: a reviewer's decision on my request reaches me, naming the step and the reviewer."""
    from tests.service.test_permission_change import CHANGE

    _names(app, platform="平台负责人")
    admin = login("office_admin")
    for decision, kind, words in (("approve", "finished", "申请已办结"), ("reject", "rejected", "未获通过")):
        instance = admin.post("/api/v1/process-instances", json={"process_key": "permission_change"}).get_json()
        complete(admin, only_task(admin, instance_id=instance["id"]), CHANGE)
        platform = login("platform")
        review = only_task(platform, instance_id=instance["id"])
        complete(platform, review, {"decision": decision, "opinion": "" if decision == "approve" else "不符合最小权限原则"})
        mine = [n for n in _notes(admin) if n["instance_id"] == instance["id"] and n["kind"] in ("approved", "rejected",
                                                                                              "finished")]
        assert len(mine) == 1, mine
        assert mine[0]["kind"] == kind and words in mine[0]["message"], mine[0]
        if decision == "reject":
            assert mine[0]["message"].startswith("您的申请在“平台管理部门审批”未获通过 — 账号权限变更与注销 #")
            assert mine[0]["message"].endswith("办理人：平台负责人")


def test_the_mail_says_what_the_inbox_says(app, login):
    """R-WF-2: with SMTP configured, the notice's mail names the request and the applicant too."""
    _names(app, clerk="张文书")
    _email(app, "platform", "platform@example.org")
    sink = _SmtpSink()
    try:
        cfg = app.config["INKLESS"]
        cfg.smtp_host, cfg.smtp_port = "127.0.0.1", sink.port
        instance_id = _report(login)
    finally:
        sink.stop()
    [raw] = [m for m in sink.messages if b"platform@example.org" in m]
    mail = message_from_bytes(raw)
    subject = str(make_header(decode_header(mail["Subject"])))
    assert subject == f"新待办：诊断分级 — 故障报告与处理 #{instance_id} · GZ-2026-017；申请人：张文书"
    assert "申请人：张文书" in mail.get_payload(decode=True).decode("utf-8")


def test_the_notice_is_read_after_the_task_is_completed_from_the_inbox_page(app, login, browser):  # noqa: F811
    """R-WF-2 (names, not codes): the head completes the task from the inbox page; the notification page then
    shows it read, and its sentence names the clerk and the request."""
    _names(app, clerk="张文书")
    instance_id = _report(login)
    head = browser("platform")
    page = text(head.get("/notifications"))
    assert f"新待办：诊断分级 — 故障报告与处理 #{instance_id} · GZ-2026-017；申请人：张文书" in page
    assert 'class="notification unread"' in page
    task = only_task(login("platform"), instance_id=instance_id)
    r = head.post(f"/tasks/{task['id']}", {"triage_action": "dismiss", "diagnosis": "本地网络故障"})
    assert r.status_code == 302, text(r)
    page = text(head.get("/notifications"))
    assert 'class="notification unread"' not in page
    finished = [n for n in _notes(login("clerk")) if n["kind"] == "finished"]
    assert [n["message"].split(" — ")[0] for n in finished] == ["申请已办结（不予受理）"]
