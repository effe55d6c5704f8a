"""The authorisation table, read-only, for those the table lets read it (R-ACC-3, R-SEC-7), in words
a supervisor reads: who (a role or a group, by name), may do what (a verb and an object), where
(their own, their department's, all); the identifiers the platform checks are shown only as a detail."""
from __future__ import annotations

from flask import Blueprint, g, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as L_

from .. import field_formats, policy
from . import signed_in

bp = Blueprint("policy", __name__)

ACTIONS = {
    "administer": L_("administer"), "break_glass": L_("open in an emergency"), "cancel": L_("cancel"),
    "change": L_("change"), "complete": L_("complete"), "create": L_("create"), "deactivate": L_("deactivate"),
    "deliver": L_("deliver"), "deploy": L_("deploy"), "edit": L_("edit"), "hand_over": L_("hand over"),
    "list_all": L_("list all"), "maintain": L_("maintain"), "manage": L_("manage"),
    "move_back": L_("move back to an earlier step"), "publish": L_("publish"), "read": L_("view"),
    "reassign": L_("reassign"), "record": L_("record"), "retry": L_("retry"), "review": L_("review"),
    "set": L_("set"), "start": L_("start"), "supervise": L_("supervise"),
}
RESOURCES = {
    "analytics": L_("statistics"), "assessment": L_("assessment results"), "builtin_process": L_("built-in procedures"),
    "business_type": L_("document categories"), "clearance": L_("security clearances"), "department": L_("departments"),
    "document": L_("documents"), "finding": L_("inspection findings"), "grant": L_("grants of rights"),
    "group": L_("functional groups"), "library": L_("the document library"), "message": L_("process messages"),
    "permission_review": L_("the periodic permission review"), "platform": L_("the platform"),
    "policy": L_("these authorisation rules"), "process_definition": L_("process definitions"),
    "process_instance": L_("requests"), "process_model": L_("process models"),
    "quarterly_assessment": L_("the quarterly assessment"), "spot_check": L_("spot checks"), "task": L_("tasks"),
    "user": L_("user accounts"),
}
ROLE_NAMES = {"user": L_("Ordinary users"), "dept_admin": L_("Department administrators"),
              "system_admin": L_("System administrators")}


def holder_name(holder: str) -> str:
    if holder == policy.ANYONE:
        return _("Everyone signed in")
    kind, _sep, code = holder.partition(":")
    if kind == "role":
        return str(ROLE_NAMES.get(code, code))
    return field_formats.name_of("group", code)


def phrase(action: str, resource: str) -> str:
    return _("%(action)s %(resource)s", action=ACTIONS.get(action, action), resource=RESOURCES.get(resource, resource))


@bp.get("/policy")
@signed_in
def table():
    policy.authorize(g.user, "read", "policy")
    scopes = {policy.OWN: _("own"), policy.DEPARTMENT: _("own department"), policy.ALL: _("all")}
    raw = policy.table()
    holders: dict[str, list[dict]] = {}
    for rule in raw["rules"]:
        holders.setdefault(rule["holder"], []).append(
            dict(rule, words=phrase(rule["action"], rule["resource"]), where=scopes[rule["scope"]]))
    sections = [{"holder": h, "name": holder_name(h), "rules": rules} for h, rules in holders.items()]
    grants = [{"holder": holder_name(gr["holder"]), "code": gr["holder"],
               "roles": [str(ROLE_NAMES.get(r, r)) for r in gr["roles"]],
               "groups": [field_formats.name_of("group", c) for c in gr["groups"]]} for gr in raw["grants"]]
    return render_template("policy.html", sections=sections, grants=grants)
