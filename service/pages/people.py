"""People and departments in the browser, for system and department administrators (issue 17,
R-ACC-3, R-ACC-4): list, create, edit, deactivate, departments and their heads.

Every action is a call of `service/people.py`, the service the API calls; this module turns forms
into its arguments and its refusals into messages beside the fields.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import auth, db, i18n, people, policy
from ..errors import Conflict, Invalid
from ..models import ROLES, Department, Group, User
from . import signed_in

bp = Blueprint("people", __name__, url_prefix="/account")


def role_names() -> dict[str, str]:
    return {code: i18n.role_name(code) for code in ("user", "dept_admin", "system_admin")}


def _errors(e: Invalid) -> dict[str, str]:
    return {d["field"]: d["message"] for d in e.details or []} or {"": e.message}


def _form_data(form, with_identity: bool) -> dict:
    data = {name: form.get(name, "") for name in ("full_name", "email", "post", "role")}
    data["groups"] = form.getlist("groups")
    if with_identity:
        data.update(username=form.get("username", ""), department=form.get("department", ""))
    return data


@bp.route("/users/new", methods=["GET", "POST"])
@signed_in
def create():
    admin = policy.authorize(g.user, "manage", "user", message=_("Only administrators may do this."))
    s = db.session()
    errors: dict[str, str] = {}
    data = _form_data(request.form, with_identity=True) if request.method == "POST" else {"role": "user", "groups": []}
    if request.method == "POST":
        try:
            with db.unit_of_work() as s:
                user, temporary = people.create(s, admin, data)
                username, full_name = user.username, user.full_name
        except Invalid as e:
            errors = _errors(e)
            s = db.session()
        else:
            return render_template("admin_user_created.html", username=username, full_name=full_name,
                                   temporary=temporary)
    departments = people.departments_for(s, admin)
    roles, groups = people.grantable(s, admin)
    return render_template("admin_user_form.html", user=None, data=data, errors=errors, departments=departments,
                           roles=roles, groups=groups, role_names=role_names()), 422 if errors else 200


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@signed_in
def edit(user_id: int):
    admin = g.user
    s = db.session()
    user = people.administered(s, admin, user_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        data = _form_data(request.form, with_identity=False)
        try:
            with db.unit_of_work() as s:
                people.update(s, admin, user_id, data)
        except Invalid as e:
            errors = _errors(e)
        else:
            flash(_("The account of %(name)s was saved.", name=data["full_name"] or user.full_name), "success")
            return redirect(url_for(".edit", user_id=user_id))
        s = db.session()
        user = people.administered(s, admin, user_id)
    else:
        data = {"full_name": user.full_name, "email": user.email or "", "post": user.post or "", "role": user.role,
                "groups": sorted(user.groups)}
    return _edit_page(s, admin, user, data, errors)


def _edit_page(s, admin: User, user: User, data: dict, errors: dict, held: list | None = None,
               deactivate_error: str | None = None, status: int | None = None):
    roles, groups = people.grantable(s, admin, user.department)
    office = [g for g in s.scalars(select(Group).where(Group.code.in_(user.groups & policy.OFFICE_GROUPS)))]
    return render_template("admin_user_form.html", user=user, data=data, errors=errors, roles=roles, groups=groups,
                           office=office, role_names=role_names(), held=held, deactivate_error=deactivate_error,
                           departments=[]), status or (422 if errors else 200)


@bp.post("/users/<int:user_id>/deactivate")
@signed_in
def deactivate(user_id: int):
    """Deactivate, or tell what is still to hand over (R-ACC-4)."""
    admin = g.user
    s = db.session()
    user = people.administered(s, admin, user_id)
    data = {"full_name": user.full_name, "email": user.email or "", "post": user.post or "", "role": user.role,
            "groups": sorted(user.groups)}
    try:
        with db.unit_of_work() as s:
            people.deactivate(s, admin, user_id, request.form.get("reason", ""))
    except Invalid as e:
        return _edit_page(db.session(), admin, user, data, {}, deactivate_error=_errors(e).get("reason"), status=422)
    except people.HandOverIncomplete as e:
        return _edit_page(db.session(), admin, user, data, {}, held=e.details, deactivate_error=e.message, status=409)
    except Conflict as e:
        flash(e.message, "error")
        return redirect(url_for(".edit", user_id=user_id))
    flash(_("The account of %(name)s was deactivated; its sessions ended.", name=user.full_name), "success")
    return redirect(url_for("pages.security.users"))


@bp.route("/departments", methods=["GET", "POST"])
@signed_in
def departments():
    admin = policy.authorize(g.user, "read", "department", message=_("Only administrators may do this."))
    s = db.session()
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        try:
            with db.unit_of_work() as s:
                department = people.create_department(s, admin, form.get("code", ""), form.get("name", ""),
                                                      form.get("parent") or None, form.get("name_en"))
                name = department.name
        except Invalid as e:
            errors = _errors(e)
        else:
            flash(_("The department %(name)s was created.", name=name), "success")
            return redirect(url_for(".departments"))
        s = db.session()
    rows = s.scalars(select(Department).order_by(Department.code)).all()
    members: dict[int, list[User]] = {}
    for user in s.scalars(select(User).where(User.active.is_(True)).order_by(User.full_name)):
        members.setdefault(user.department_id, []).append(user)
    heads = {u.id: u for users in members.values() for u in users}
    return render_template("admin_departments.html", departments=rows, members=members, heads=heads, errors=errors,
                           form=form, may_create=auth.is_system_admin(admin),
                           may_set_head={d.id for d in rows if auth.is_admin_of(admin, d.id)}), 422 if errors else 200


@bp.post("/departments/<string:code>/head")
@signed_in
def set_head(code: str):
    try:
        with db.unit_of_work() as s:
            department = people.set_head(s, g.user, code, request.form.get("head", ""))
            name = department.name
    except Invalid as e:
        flash(_errors(e).get("head", e.message), "error")
        return redirect(url_for(".departments"))
    flash(_("The head of %(name)s is set.", name=name), "success")
    return redirect(url_for(".departments"))


def filters(s, admin: User) -> dict:
    """The list's filter choices: departments the admin may read, roles, states."""
    departments = s.scalars(select(Department).where(
        Department.id.in_(select(User.department_id).where(policy.scope_filter(admin, "read", "user"))))
        .order_by(Department.code)).all()
    return {"departments": departments, "roles": [(r, role_names()[r]) for r in ROLES],
            "states": [("active", _("Active")), ("inactive", _("Deactivated"))]}
