"""Least privilege on every API route (R-ACC-3, R-SEC-7): every route × every role gets the
expected status. The matrix is checked against the app's URL map, so a new API route without a
rule here fails the suite until someone decides who may call it."""
from __future__ import annotations

import pytest

from tests.conftest import ApiClient
from tests.service.documents_helpers import uploaded

# The callers: anonymous, an ordinary user of OFFICE, the administrator of another department,
# the administrator of OFFICE (where the resources live, and who started the instance), a system admin.
ROLES = {"anonymous": None, "user": "clerk", "other_dept_admin": "fin_admin", "same_dept_admin": "office_admin",
         "system_admin": "sysadmin"}

A, U, O, S, X = "anonymous", "user", "other_dept_admin", "same_dept_admin", "system_admin"  # noqa: E741


def _all(code, **overrides):
    out = {A: 401, U: code, O: code, S: code, X: code}
    out.update({k.replace("__", "_"): v for k, v in overrides.items()})
    return out


# (method, rule) -> (body or None, expected status per role). {instance}/{task} are filled in with an
# account application started by office_admin (OFFICE) and its first task.
MATRIX = {
    ("POST", "/api/v1/auth/token"): ({}, {A: 422, U: 422, O: 422, S: 422, X: 422}),
    # Identity (R-SEC-6, R-ACC-3): my own sessions and tokens; account administration of {user}
    # (clerk, OFFICE) by the system admin or OFFICE's department admin only.
    ("GET", "/api/v1/auth/tokens"): (None, _all(200)),
    ("DELETE", "/api/v1/auth/tokens/999999"): (None, _all(404)),
    ("DELETE", "/api/v1/users/{user}/sessions"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/users/{user}/password-reset"): ({}, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/users/{user}/mfa-reset"): ({"reason": "lost phone and recovery codes"},
                                                {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("GET", "/api/v1/departments"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    # People and departments (issue 17): tests/service/test_people_admin.py has the real ones. {user} is
    # clerk, who owns nothing: OFFICE's administrator deactivates them, the system admin finds it done.
    ("POST", "/api/v1/users"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("PATCH", "/api/v1/users/{user}"): ({"post": "文员"}, {A: 401, U: 404, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/users/{user}/deactivate"): ({"reason": "离职"}, {A: 401, U: 404, O: 404, S: 200, X: 409}),
    ("POST", "/api/v1/departments"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("PUT", "/api/v1/departments/nothing/head"): ({"username": "clerk"}, {A: 401, U: 404, O: 404, S: 404, X: 404}),
    ("GET", "/api/v1/users"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/policy"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    # Functional groups (issue 14): administrators read them; a department administrator keeps their
    # department's, a system administrator all (tests/service/test_groups.py has the real groups).
    ("GET", "/api/v1/groups"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("POST", "/api/v1/groups"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/groups/nothing"): (None, {A: 401, U: 403, O: 404, S: 404, X: 404}),
    ("PATCH", "/api/v1/groups/nothing"): ({"name": "无"}, {A: 401, U: 403, O: 404, S: 404, X: 404}),
    ("DELETE", "/api/v1/groups/nothing"): (None, {A: 401, U: 403, O: 404, S: 404, X: 404}),
    ("POST", "/api/v1/groups/nothing/members"): ({"username": "clerk"}, {A: 401, U: 403, O: 404, S: 404, X: 404}),
    ("DELETE", "/api/v1/groups/nothing/members/clerk"): (None, {A: 401, U: 403, O: 404, S: 404, X: 404}),
    # The audit log (R-SEC-4, R-SEC-8, issue 15): auditors only, not even a system administrator
    # (tests/service/test_audit_log.py has the auditor's answers).
    ("GET", "/api/v1/audit/events"): (None, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("GET", "/api/v1/audit/events/export"): (None, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("GET", "/api/v1/audit/findings"): (None, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("GET", "/api/v1/audit/findings/999999"): (None, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("POST", "/api/v1/audit/findings/999999/dismiss"): ({"reason": "无"}, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("POST", "/api/v1/audit/findings/999999/rectify"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("POST", "/api/v1/audit/findings/999999/incident"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("POST", "/api/v1/audit/review"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    # The monthly access review: the supervision group and auditors (none of the callers here).
    ("GET", "/api/v1/audit/access-review"): (None, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    # The maintenance plan (R-OPS-1): system administrators only.
    ("GET", "/api/v1/maintenance"): (None, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("POST", "/api/v1/messages"): ({"name": "nobody_waits"}, {A: 401, U: 403, O: 403, S: 403, X: 404}),
    ("GET", "/api/v1/notifications"): (None, _all(200)),
    ("POST", "/api/v1/notifications/999999/read"): ({}, _all(404)),
    ("GET", "/api/v1/process-definitions"): (None, _all(200)),
    # office_admin is in the designer group; fin_admin is not.
    ("POST", "/api/v1/process-definitions"): (None, {A: 401, U: 403, O: 403, S: 422, X: 422}),
    ("GET", "/api/v1/process-definitions/account_application"): (None, _all(200)),
    ("GET", "/api/v1/process-definitions/account_application/xml"): (None, _all(200)),
    ("GET", "/api/v1/process-instances"): (None, _all(200)),
    ("POST", "/api/v1/process-instances"): ({}, _all(422)),
    ("GET", "/api/v1/process-instances/{instance}"): (None, {A: 401, U: 404, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/process-instances/{instance}/cancel"): ({"reason": "测试"},
                                                              {A: 401, U: 404, O: 404, S: 200, X: 200}),
    # Withdraw (issue 17, R-WF-2): only the initiator (office_admin), not even a system administrator.
    ("POST", "/api/v1/process-instances/{instance}/withdraw"): ({"reason": "测试"},
                                                                {A: 401, U: 404, O: 404, S: 200, X: 403}),
    ("POST", "/api/v1/process-instances/{instance}/retry"): ({"reason": "测试"},
                                                             {A: 401, U: 404, O: 404, S: 403, X: 409}),
    # Supervision counts: system admins and supervisors everything, a department admin their own department.
    ("GET", "/api/v1/supervision/processes"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/supervision/processes/account_application/elements"): (None,
                                                                              {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/tasks"): (None, _all(200)),
    ("GET", "/api/v1/tasks/{task}"): (None, {A: 401, U: 404, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/tasks/{task}/claim"): ({}, {A: 401, U: 403, O: 403, S: 200, X: 403}),
    ("POST", "/api/v1/tasks/{task}/release"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 403}),
    ("POST", "/api/v1/tasks/{task}/complete"): ({"data": {}}, {A: 401, U: 403, O: 403, S: 422, X: 403}),
    # Delegation (issue 17): only someone who may do the task (office_admin, its candidate), to a
    # colleague who may do it too; office_admin would hand it to clerk, who is not one (422).
    ("POST", "/api/v1/tasks/{task}/delegate"): ({"username": "clerk", "reason": "测试"},
                                               {A: 401, U: 404, O: 404, S: 422, X: 403}),
    # My substitutes while away (issue 17): everyone their own.
    ("GET", "/api/v1/substitutions"): (None, _all(200)),
    ("POST", "/api/v1/substitutions"): ({}, _all(422)),
    ("DELETE", "/api/v1/substitutions/999999"): (None, _all(404)),
    ("POST", "/api/v1/tasks/{task}/reassign"): ({"username": "clerk", "reason": "测试"},
                                                {A: 401, U: 404, O: 404, S: 200, X: 200}),
    # The document library (R-DOC-*, R-SEC-4): {document} was uploaded by clerk (OFFICE, 内部).
    ("GET", "/api/v1/documents"): (None, _all(200)),
    ("POST", "/api/v1/documents"): (None, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/documents/search"): (None, _all(422)),  # q is required
    ("GET", "/api/v1/documents/{document}"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("DELETE", "/api/v1/documents/{document}"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/documents/{document}/undelete"): ({}, {A: 401, U: 409, O: 404, S: 409, X: 409}),
    ("GET", "/api/v1/documents/{document}/versions"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/documents/{document}/versions"): (None, {A: 401, U: 422, O: 404, S: 422, X: 422}),
    ("GET", "/api/v1/documents/{document}/content"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("GET", "/api/v1/documents/{document}/versions/1/content"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("GET", "/api/v1/documents/{document}/versions/1/diff"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/documents/{document}/versions/1/restore"): ({"note": "恢复"},
                                                                  {A: 401, U: 201, O: 404, S: 201, X: 201}),
    ("GET", "/api/v1/documents/{document}/shares"): (None, {A: 401, U: 200, O: 404, S: 200, X: 200}),
    ("POST", "/api/v1/documents/{document}/shares"): ({"username": "fin_head", "permission": "read"},
                                                      {A: 401, U: 201, O: 404, S: 201, X: 201}),
    ("DELETE", "/api/v1/documents/{document}/shares/999999"): (None, {A: 401, U: 404, O: 404, S: 404, X: 404}),
    # {document} is 内部, within everyone's clearance: nobody needs to break the glass for it.
    ("POST", "/api/v1/documents/{document}/break-glass"): ({"reason": "紧急"},
                                                          {A: 401, U: 403, O: 403, S: 403, X: 409}),
    ("GET", "/api/v1/documents/clearances"): (None, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("PUT", "/api/v1/documents/clearances/clerk"): ({"level": "秘密"}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("GET", "/api/v1/documents/business-types"): (None, _all(200)),
    ("POST", "/api/v1/documents/business-types"): ({"code": "contract", "name": "合同"},
                                                   {A: 401, U: 403, O: 403, S: 403, X: 201}),
    ("PATCH", "/api/v1/documents/business-types/nothing"): ({"name": "无"}, {A: 401, U: 403, O: 403, S: 403, X: 404}),
    ("POST", "/api/v1/documents/archive"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("POST", "/api/v1/documents/purge"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("POST", "/api/v1/documents/keys/rotate"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    # Analytics (R-WF-4, R-SUP-3): supervisors, platform and system admins; a department admin for their own.
    ("GET", "/api/v1/analytics/elements"): (None, {A: 401, U: 403, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/analytics/indicators"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/analytics/indicators/trend"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/analytics/indicators/records"): (None, {A: 401, U: 403, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/analytics/indicators/export"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/analytics/feedback"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/analytics/evaluations"): (None, {A: 401, U: 403, O: 422, S: 422, X: 422}),
    # The evaluations' pages (R-WF-4): whoever may read analytics; signed out, to the sign-in page.
    # Supervisors: tests/service/test_analytics_evaluations.py.
    ("GET", "/analytics/evaluations"): (None, {A: 302, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/analytics/evaluations/account_application"): (None, {A: 302, U: 403, O: 200, S: 200, X: 200}),
    # Inspection (R-SUP-1): supervisors and system admins everything, a department admin their own
    # department's; {document} is OFFICE's, so fin_admin does not find it.
    ("GET", "/api/v1/inspection/accounts"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/inspection/departments"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/inspection/documents"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/inspection/documents/{document}"): (None, {A: 401, U: 403, O: 404, S: 200, X: 200}),
    ("GET", "/api/v1/inspection/processes"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    # Performance records (R-SUP-5): supervisors, the platform and system admins; a department admin their own.
    ("GET", "/api/v1/performance-records"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    ("GET", "/api/v1/performance-records/export"): (None, {A: 401, U: 403, O: 200, S: 200, X: 200}),
    # Scores per person (R-SUP-3, R-SUP-5): everyone their own, a department's head its people, the
    # supervision group and system admins everyone; {username} is clerk, whom no department
    # administrator sees (tests/service/test_person_scores.py has the heads and supervisors).
    ("GET", "/api/v1/person-scores"): (None, _all(200)),
    ("GET", "/api/v1/person-scores/me"): (None, _all(200)),
    ("GET", "/api/v1/person-scores/clerk"): (None, {A: 401, U: 200, O: 404, S: 404, X: 200}),
    # The studio (issue 7): designers (office_admin) and system admins only. account_application is
    # in the catalogue, owned by the platform management department: an OFFICE designer reads it but
    # changes nothing; a system administrator may.
    ("GET", "/api/v1/studio"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/studio/account_application"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("PATCH", "/api/v1/studio/account_application"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("PUT", "/api/v1/studio/account_application/draft"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/studio/account_application/draft/xml"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio/account_application/validate"): ({}, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio/account_application/try"): ({}, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio/account_application/deploy"): ({}, {A: 401, U: 422, O: 422, S: 422, X: 422}),
    ("GET", "/api/v1/studio/account_application/diff"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("GET", "/api/v1/studio/account_application/instances"): (None, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("GET", "/api/v1/studio/account_application/performers"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio/account_application/migrate"): ({}, {A: 401, U: 403, O: 403, S: 403, X: 200}),
    ("GET", "/api/v1/studio/account_application/package"): (None, {A: 401, U: 403, O: 403, S: 200, X: 200}),
    ("POST", "/api/v1/studio/account_application/package"): (None, {A: 401, U: 403, O: 403, S: 422, X: 422}),
    ("POST", "/api/v1/studio/account_application/forms/preview"): ({"schema": {"type": "object"}}, {
        A: 401, U: 403, O: 403, S: 200, X: 200}),
}

# Routes that answer everyone by design.
PUBLIC = {("GET", "/api/docs"), ("GET", "/api/openapi.json")}

_PLACEHOLDERS = {"<int:instance_id>": "{instance}", "<string:task_id>": "{task}", "<string:key>": "account_application",
                 "<int:notification_id>": "999999", "<int:document_id>": "{document}", "<int:number>": "1",
                 "<int:share_id>": "999999", "<string:username>": "clerk", "<string:code>": "nothing",
                 "<int:token_id>": "999999", "<int:user_id>": "{user}",
                 "<int:finding_id>": "999999",

                 "<int:substitution_id>": "999999"}


def _api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule
        for placeholder, value in _PLACEHOLDERS.items():
            path = path.replace(placeholder, value)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return routes


def test_every_api_route_has_a_rule(app):
    missing = _api_routes(app) - set(MATRIX) - PUBLIC
    assert not missing, f"API routes without an access rule in tests/service/test_access_matrix.py: {sorted(missing)}"


def _user_id(app, username: str) -> int:
    from sqlalchemy import select

    from service.models import User
    with app.app_context():
        s = app.extensions["inkless.db"]()
        try:
            return s.scalar(select(User.id).where(User.username == username))
        finally:
            s.close()


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_answers_each_role_as_the_policy_says(route, app, client, login):
    method, template = route
    body, expected = MATRIX[route]
    got = {}
    for role, username in ROLES.items():
        # A fresh instance per call, so one role's action does not change what the next one sees.
        starter = login("office_admin")
        instance = starter.post("/api/v1/process-instances", json={"process_key": "account_application"}).get_json()
        task = starter.get("/api/v1/tasks", query_string={"instance_id": instance["id"]}).get_json()["items"][0]
        document = uploaded(login("clerk"))["id"] if "{document}" in template else None
        user = _user_id(app, "clerk") if "{user}" in template else None
        path = template.format(instance=instance["id"], task=task["id"], document=document, user=user)
        caller = login(username) if username else ApiClient(client)
        if method == "GET":
            response = caller.get(path)
        elif body is None and method == "POST":  # multipart uploads, sent empty
            response = caller.client.post(path, data={}, content_type="multipart/form-data", headers=caller._headers())
        else:
            response = caller.client.open(path, method=method, json=body, headers=caller._headers())
        got[role] = response.status_code
        if role == "same_dept_admin" and template.endswith("/claim"):
            caller.post(f"/api/v1/tasks/{task['id']}/release")
    assert got == expected
