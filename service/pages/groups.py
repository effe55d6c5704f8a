"""Functional groups, for the administrators who keep them (R-ACC-3, R-WF-1, issue 14): a
department administrator creates their department's groups and chooses their members; a system
administrator any department's or the platform's. The same service functions as the REST API
(service/groups.py) decide; a refusal comes back as a message above the list."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import db, groups, policy
from ..errors import ApiError
from ..models import Department, User
from . import signed_in

bp = Blueprint("groups", __name__, url_prefix="/groups")


def _reader() -> User:
    return policy.authorize(g.user, "read", "group", message=_("Only administrators may do this."))


@bp.get("")
@signed_in
def index():
    reader = _reader()
    s = db.session()
    listed = groups.visible(s, reader)
    people = s.scalars(select(User).where(policy.scope_filter(reader, "manage", "user"), User.active.is_(True))
                       .order_by(User.username)).all()
    # Who each group could take in: people the reader administers, of its department, not yet members.
    addable = {item.group.code: [u for u in people if groups.assignable(item.group, u) and item.group.code not in u.groups
                                 and not (item.group.builtin and u.id == reader.id)]
               for item in listed if item.grantable}
    platform_ok = groups.default_department(reader) is None
    departments = s.scalars(select(Department).order_by(Department.code)).all() if platform_ok \
        else [reader.department]
    return render_template("admin_groups.html", listed=listed, addable=addable, departments=departments,
                           platform_ok=platform_ok)


def _act(change, done: str):
    """Run one change in a unit of work; a refusal is shown on the page rather than as an error page."""
    _reader()
    try:
        with db.unit_of_work() as s:
            change(s)
    except ApiError as e:
        flash(e.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for(".index"), 303)


@bp.post("")
@signed_in
def create():
    form = request.form
    code = form.get("code", "").strip()
    department = form.get("department") if "department" in form else groups.default_department(g.user)
    return _act(lambda s: groups.create(s, g.user, code, form.get("name", ""), form.get("name_en"), department or None),
                _("Group %(code)s was created.", code=code))


@bp.post("/<code>/members")
@signed_in
def add_member(code: str):
    username = request.form.get("username", "")
    return _act(lambda s: groups.add_member(s, g.user, code, username),
                _("%(username)s was added to group %(code)s.", username=username, code=code))


@bp.post("/<code>/members/<username>/remove")
@signed_in
def remove_member(code: str, username: str):
    return _act(lambda s: groups.remove_member(s, g.user, code, username),
                _("%(username)s was removed from group %(code)s.", username=username, code=code))


@bp.post("/<code>/delete")
@signed_in
def delete(code: str):
    return _act(lambda s: groups.delete(s, g.user, code), _("Group %(code)s was deleted.", code=code))
