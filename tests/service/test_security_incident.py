"""Security incidents as a procedure (R-SEC-2 "网络安全事件应急响应机制", issue 15), through the HTTP
API along every path of security_incident.bpmn: reported by anyone → the platform assesses the
severity → contain → recover → review; the deadlines come from security_incident_deadlines.dmn by
severity and an overdue containment is reported to the supervision group; "not an incident" closes
it. Also started from an audit finding and from a fault report marked security, and counted in
the security incident rate (R-SUP-3)."""
from __future__ import annotations

from datetime import timedelta

from engine import clock
from service.scheduler import run_due
from tests.service.flows import complete as _complete
from tests.service.flows import only_task as _only_task
from tests.service.test_audit_log import auditor  # noqa: F401 - the auditor fixture

KEY = "security_incident"
REPORT = {"title": "办公室电脑出现勒索提示", "occurred_at": "2026-12-01T08:40:00+08:00",
          "systems": "办公室文件共享目录", "details": "开机后弹出勒索提示,共享目录中的文件扩展名被改。已拔掉网线。"}
CONTAINED = {"containment": "隔离该电脑,停用其账号,封禁共享目录写入", "contained_at": "2026-12-01T10:00:00+08:00"}
RECOVERED = {"recovery": "重装系统,从 11 月 30 日备份恢复共享目录", "recovered_at": "2026-12-02T09:00:00+08:00"}
REVIEWED = {"cause": "钓鱼邮件附件", "lessons": "附件须先查毒", "measures": "开展防钓鱼培训,共享目录按部门隔离"}


def _report(login, who="clerk") -> int:
    api = login(who)
    r = api.post("/api/v1/process-instances", json={"process_key": KEY})
    assert r.status_code == 201, r.get_json()
    instance_id = r.get_json()["id"]
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "report_incident"
    _complete(api, task, REPORT)
    return instance_id


def _assess(login, instance_id, severity) -> dict:
    api = login("platform")
    task = _only_task(api, instance_id=instance_id)
    assert task["element_id"] == "assess_incident"
    detail = api.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert REPORT["title"] in detail["instructions"] or "审计发现" in detail["instructions"] or "故障" in detail["instructions"]
    return _complete(api, task, {"severity": severity, "assessment": "勒索软件感染,影响一个部门"})


def test_an_incident_is_contained_recovered_and_reviewed_within_its_severitys_deadlines(login, frozen):
    """R-SEC-2: a major incident must be contained within 8 hours and recovered within 3 days (the
    decision table); each step is the platform's, and the record keeps what was done and when."""
    instance_id = _report(login)
    _assess(login, instance_id, "major")
    platform = login("platform")
    contain = _only_task(platform, instance_id=instance_id)
    assert contain["element_id"] == "contain_incident"
    assert contain["due_at"] is not None
    assert clock.now() + timedelta(hours=8) - timedelta(minutes=1) <= _at(contain["due_at"]) <= clock.now() + timedelta(hours=8, minutes=1)
    _complete(platform, contain, CONTAINED)
    recover = _only_task(platform, instance_id=instance_id)
    assert recover["element_id"] == "recover_incident"
    assert abs(_at(recover["due_at"]) - (clock.now() + timedelta(days=3))) < timedelta(minutes=1)
    _complete(platform, recover, RECOVERED)
    review = _only_task(platform, instance_id=instance_id)
    assert review["element_id"] == "review_incident"
    done = _complete(platform, review, REVIEWED)
    assert done["state"] == "completed" and "end_closed" in done["completed_elements"]
    assert "contain_overdue" not in done["completed_elements"]
    # Only the platform's group does the work: the reporter has nothing after reporting.
    assert login("clerk").get("/api/v1/tasks", query_string={"instance_id": instance_id}).get_json()["total"] == 0


def test_a_critical_incident_not_contained_in_two_hours_is_reported_to_the_supervision_group(app, login, frozen):
    """R-SEC-2: the deadline follows the severity (critical: 2 hours); past it the task is flagged
    overdue, the supervision group is told once, and the platform keeps the task."""
    instance_id = _report(login)
    _assess(login, instance_id, "critical")
    platform = login("platform")
    contain = _only_task(platform, instance_id=instance_id)
    assert abs(_at(contain["due_at"]) - (clock.now() + timedelta(hours=2))) < timedelta(minutes=1)
    frozen.advance(hours=1, minutes=50)
    run_due(app)
    assert not _escalations(login)
    frozen.advance(minutes=20)
    run_due(app)
    escalations = _escalations(login)
    assert len(escalations) == 1 and REPORT["title"] in escalations[0]["message"]
    frozen.advance(hours=3)
    run_due(app)
    assert len(_escalations(login)) == 1
    assert _only_task(platform, instance_id=instance_id)["overdue"] is True
    _complete(platform, contain, CONTAINED)
    assert _only_task(platform, instance_id=instance_id)["element_id"] == "recover_incident"


def test_a_report_that_is_no_incident_is_closed_with_the_reason(login):
    """R-SEC-2: the platform may find that a report is no security incident: it closes, and the
    security incident rate does not count it."""
    instance_id = _report(login)
    done = _assess(login, instance_id, "none")
    assert done["state"] == "completed" and "end_not_incident" in done["completed_elements"]
    assert "contain_incident" not in done["completed_elements"]


def _escalations(login) -> list[dict]:
    return [n for n in login("supervisor").get("/api/v1/notifications").get_json()["items"] if n["kind"] == "escalation"]


def _at(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_fault_report_marked_security_is_also_handled_as_a_security_incident(login):
    """R-SEC-2, R-OPS-3: once the platform takes on a fault reported as a security incident, the
    fault report's diagram starts security_incident with the report; the fault is handled on."""
    from tests.service.test_fault_report import REPORT as FAULT

    api = login("clerk")
    fault = api.post("/api/v1/process-instances", json={"process_key": "fault_report"}).get_json()["id"]
    _complete(api, _only_task(api, instance_id=fault), dict(FAULT, affected_area="security",
                                                             symptom="多名同事收到冒充平台的钓鱼邮件"))
    platform = login("platform")
    before = platform.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()["total"]
    triaged = _complete(platform, _only_task(platform, instance_id=fault),
                        {"triage_action": "handle", "severity": "major", "diagnosis": "钓鱼邮件,已拦截发件域名"})
    assert "raise_security_incident" in triaged["completed_elements"]
    assert _only_task(platform, instance_id=fault)["element_id"] == "handle_fault"
    incidents = platform.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()
    assert incidents["total"] == before + 1
    incident = incidents["items"][0]["id"]
    task = _only_task(platform, instance_id=incident)
    assert task["element_id"] == "assess_incident"
    detail = platform.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert "多名同事收到冒充平台的钓鱼邮件" in detail["instructions"] and "已拦截发件域名" in detail["instructions"]

    plain = api.post("/api/v1/process-instances", json={"process_key": "fault_report"}).get_json()["id"]
    _complete(api, _only_task(api, instance_id=plain), FAULT)
    done = _complete(platform, _only_task(platform, instance_id=plain),
                     {"triage_action": "handle", "severity": "general", "diagnosis": "连接池耗尽"})
    assert "raise_security_incident" not in done["completed_elements"]
    assert platform.get("/api/v1/process-instances", query_string={"process_key": KEY}).get_json()["total"] == before + 1


def test_an_audit_finding_is_handed_over_as_a_security_incident_and_counted(app, client, login, auditor,  # noqa: F811
                                                                                 frozen):
    """R-SEC-2, R-SEC-4, R-SUP-3: an auditor hands a burst of failed sign-ins to the platform as a
    security incident (API); the instance starts at the assessment with the finding as its report,
    the finding links it; the security incident rate counts the incident, not a report found to be
    no incident."""
    from tests.service.test_anomaly import FINDINGS, REVIEW, _fail

    _fail(client, "clerk", 6)
    api = login(auditor)
    found = [f for f in api.post(REVIEW, json={}).get_json()["found"] if f["rule"] == "failed_logins_account"][0]
    r = api.post(f"{FINDINGS}/{found['id']}/incident", json={"note": "疑似暴力破解"})
    assert r.status_code == 200, r.get_json()
    decided = r.get_json()
    assert decided["status"] == "incident" and decided["instance_id"]
    assert api.post(f"{FINDINGS}/{found['id']}/incident", json={}).status_code == 409  # decided already
    platform = login("platform")
    task = _only_task(platform, instance_id=decided["instance_id"])
    assert task["element_id"] == "assess_incident"
    detail = platform.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert f"审计发现 #{found['id']}" in detail["instructions"] and "疑似暴力破解" in detail["instructions"]
    _complete(platform, task, {"severity": "general", "assessment": "外部撞库,已封禁来源地址"})

    dismissed = _report(login, "fin_head")  # clerk is locked out by the burst
    _assess(login, dismissed, "none")
    records = login("supervisor").get("/api/v1/analytics/indicators/records",
                                      query_string={"kind": "incidents", "period": "2026-12"}).get_json()["items"]
    procedures = {r["instance_id"] for r in records if r["kind"] == "procedure"}
    assert decided["instance_id"] in procedures and dismissed not in procedures
