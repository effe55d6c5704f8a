"""My substitutes while I am away (issue 17, R-WF-2): the same service as the page (service/substitutes.py)."""
from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from .. import auth, db, substitutes
from ..models import User
from .blueprint import Blueprint
from .schemas import SubstitutionIn, SubstitutionList, SubstitutionOut

PREFIX = "/substitutions"
blp = Blueprint("substitutions", __name__, description="Substitutes while away")


def _out(s, rows) -> list[dict]:
    names = dict(s.execute(select(User.id, User.username).where(User.id.in_({r.substitute_id for r in rows}))).all())
    return [{"id": r.id, "substitute": names.get(r.substitute_id), "starts_at": r.starts_at, "ends_at": r.ends_at,
             "reason": r.reason} for r in rows]


@blp.route("")
class Substitutions(MethodView):
    @blp.response(200, SubstitutionList)
    def get(self):
        """My substitutions not yet over."""
        s = db.session()
        return {"items": _out(s, substitutes.of(s, auth.current_user()))}

    @blp.arguments(SubstitutionIn)
    @blp.response(201, SubstitutionOut)
    def post(self, body):
        """Name a colleague of my department who receives the tasks offered to me in the period."""
        with db.unit_of_work() as s:
            row = substitutes.name(s, auth.current_user(), body["substitute"], body["starts_at"], body["ends_at"],
                                   body["reason"])
            return _out(s, [row])[0]


@blp.route("/<int:substitution_id>")
class SubstitutionResource(MethodView):
    @blp.response(200, SubstitutionOut)
    def delete(self, substitution_id):
        """End it now (back early)."""
        with db.unit_of_work() as s:
            row = substitutes.end(s, auth.current_user(), substitution_id)
            return _out(s, [row])[0]
