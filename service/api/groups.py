"""Functional groups (R-ACC-3, R-WF-1): a department's own groups, kept by its administrators, and
the platform's, kept by the system administrators; their members. Rules: service/groups.py."""
from __future__ import annotations

from flask.views import MethodView
from flask_babel import gettext as _

from .. import auth, db, groups, policy
from .blueprint import Blueprint
from .schemas import GroupIn, GroupList, GroupMemberIn, GroupOut, GroupPatch, ListArgs

PREFIX = "/groups"
blp = Blueprint("groups", __name__, description="Functional groups and their members (administrators)")


def _reader():
    return policy.authorize(auth.current_user(), "read", "group", message=_("Only administrators may do this."))


def _listed(s, user, code: str) -> groups.Listed:
    return next(item for item in groups.visible(s, user) if item.group.code == code)


@blp.route("")
class Groups(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, GroupList)
    def get(self, args):
        """Every group, platform groups first; members only of the departments the caller administers."""
        items = groups.visible(db.session(), _reader())
        return {"items": items[args["offset"]:args["offset"] + args["limit"]], "total": len(items)}

    @blp.arguments(GroupIn)
    @blp.response(201, GroupOut)
    def post(self, body):
        """Create a group: a department administrator for their department, a system administrator
        for any department or the platform. Audited."""
        user = auth.current_user()
        department = body["department"] if "department" in body else groups.default_department(user)
        with db.unit_of_work() as s:
            group = groups.create(s, user, body["code"], body["name"], body.get("name_en"), department)
            return _listed(s, user, group.code)


@blp.route("/<string:code>")
class GroupResource(MethodView):
    @blp.response(200, GroupOut)
    def get(self, code):
        """One group."""
        user = _reader()
        s = db.session()
        groups.get(s, code)
        return _listed(s, user, code)

    @blp.arguments(GroupPatch)
    @blp.response(200, GroupOut)
    def patch(self, body, code):
        """Rename a group (its code, which diagrams name, stays); not the built-in groups. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            groups.update(s, user, code, body)
            return _listed(s, user, code)

    @blp.response(204)
    def delete(self, code):
        """Delete a group and its memberships; 409 while open tasks are offered to it or the current
        version of a process names it; never the built-in groups. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            groups.delete(s, user, code)


@blp.route("/<string:code>/members")
class GroupMembers(MethodView):
    @blp.arguments(GroupMemberIn)
    @blp.response(201, GroupOut)
    def post(self, body, code):
        """Add a member: someone of the group's department (any department for a platform group) whom
        the caller administers; a built-in group only as far as the caller may grant it. Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            groups.add_member(s, user, code, body["username"])
            return _listed(s, user, code)


@blp.route("/<string:code>/members/<string:username>")
class GroupMember(MethodView):
    @blp.response(200, GroupOut)
    def delete(self, code, username):
        """Remove a member (same rules as adding). Audited."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            groups.remove_member(s, user, code, username)
            return _listed(s, user, code)
