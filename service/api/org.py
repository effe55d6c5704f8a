from __future__ import annotations

from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import audit_log, auth, db, people, policy
from ..models import Department, User
from .blueprint import Blueprint
from .schemas import (
    Deactivation,
    DepartmentCreate,
    DepartmentHead,
    DepartmentList,
    DepartmentOut,
    EndedSessions,
    ListArgs,
    MfaReset,
    MfaResetArgs,
    PasswordReset,
    UserChange,
    UserCreate,
    UserCreated,
    UserList,
    UserOut,
)

PREFIX = ""
blp = Blueprint("organisation", __name__, description="Departments and users (administrators)")


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, UserList)
    def get(self, args):
        """Users; a department administrator sees only their own department (R-ACC-3)."""
        admin = policy.authorize(auth.current_user(), "read", "user", message=_("Only administrators may do this."))
        s = db.session()
        query = select(User).where(policy.scope_filter(admin, "read", "user"))
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        items = s.scalars(query.order_by(User.username).limit(args["limit"]).offset(args["offset"])).all()
        for item in items:
            audit_log.note_read("user", item.id)
        return {"items": items, "total": total}

    @blp.arguments(UserCreate)
    @blp.response(201, UserCreated)
    def post(self, body):
        """Create an account with a temporary password, shown only in this answer (the system
        administrator anywhere, a department administrator in their department; R-ACC-3, R-SEC-7)."""
        with db.unit_of_work() as s:
            user, temporary = people.create(s, auth.current_user(), body)
            user.temporary_password = temporary  # not a column: shown once, in this answer only
            return user


@blp.route("/users/<int:user_id>")
class UserResource(MethodView):
    @blp.arguments(UserChange)
    @blp.response(200, UserOut)
    def patch(self, body, user_id):
        """Change name, e-mail, post, role and groups, within what the caller may grant."""
        with db.unit_of_work() as s:
            return people.update(s, auth.current_user(), user_id, body)


@blp.route("/users/<int:user_id>/deactivate")
class UserDeactivation(MethodView):
    @blp.arguments(Deactivation)
    @blp.response(200, UserOut)
    def post(self, body, user_id):
        """Deactivate an account; 409 listing what it still owns while the hand-over is incomplete (R-ACC-4)."""
        with db.unit_of_work() as s:
            return people.deactivate(s, auth.current_user(), user_id, body["reason"])


@blp.route("/departments")
class Departments(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, DepartmentList)
    def get(self, args):
        """The department tree (administrators)."""
        policy.authorize(auth.current_user(), "read", "department", message=_("Only administrators may do this."))
        s = db.session()
        total = s.scalar(select(func.count(Department.id)))
        rows = s.scalars(select(Department).order_by(Department.code).limit(args["limit"]).offset(args["offset"])).all()
        heads = dict(s.execute(select(User.id, User.username).where(
            User.id.in_([d.head_id for d in rows if d.head_id]))).all())
        items = [{"id": d.id, "code": d.code, "name": d.name, "name_en": d.name_en, "parent": d.parent, "head": heads.get(d.head_id)}
                 for d in rows]
        return {"items": items, "total": total}

    @blp.arguments(DepartmentCreate)
    @blp.response(201, DepartmentOut)
    def post(self, body):
        """Create a department (system administrators)."""
        with db.unit_of_work() as s:
            department = people.create_department(s, auth.current_user(), body["code"], body["name"], body.get("parent"),
                                                  body.get("name_en"))
            return {"id": department.id, "code": department.code, "name": department.name,
                    "name_en": department.name_en, "parent": department.parent, "head": None}


@blp.route("/departments/<string:code>/head")
class DepartmentHeadResource(MethodView):
    @blp.arguments(DepartmentHead)
    @blp.response(200, DepartmentOut)
    def put(self, body, code):
        """Name the head of a department (its administrator or the system administrator)."""
        with db.unit_of_work() as s:
            department = people.set_head(s, auth.current_user(), code, body["username"])
            return {"id": department.id, "code": department.code, "name": department.name,
                    "name_en": department.name_en, "parent": department.parent, "head": body["username"]}


@blp.route("/users/<int:user_id>/sessions")
class UserSessions(MethodView):
    @blp.response(200, EndedSessions)
    def delete(self, user_id):
        """End every session and API token of a user (the system administrator or the user's
        department administrator)."""
        admin = auth.current_user()
        with db.unit_of_work() as s:
            ended = auth.end_sessions(s, admin, user_id)
        return {"ended": ended}


@blp.route("/users/<int:user_id>/password-reset")
class UserPasswordReset(MethodView):
    @blp.response(200, PasswordReset)
    def post(self, user_id):
        """Give a user a temporary password, shown only in this answer; they must change it at
        their next sign-in, and their sessions end now."""
        admin = auth.current_user()
        with db.unit_of_work() as s:
            user, temporary = auth.reset_password(s, admin, user_id)
            return {"username": user.username, "temporary_password": temporary, "must_change_password": True}


@blp.route("/users/<int:user_id>/mfa-reset")
class UserMfaReset(MethodView):
    @blp.arguments(MfaResetArgs)
    @blp.response(200, MfaReset)
    def post(self, args, user_id):
        """Remove a user's authenticator, recovery codes and security keys (they lost them), with a
        reason; every session and token of theirs ends, and they are told. Same rule as the password
        reset; nobody resets their own."""
        admin = auth.current_user()
        with db.unit_of_work() as s:
            user, ended = auth.reset_second_factor(s, admin, user_id, args["reason"])
            return {"username": user.username, "sessions_ended": ended}
