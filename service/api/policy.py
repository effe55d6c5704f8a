"""The authorisation table, read-only, for administrators (R-ACC-3, R-SEC-7)."""
from __future__ import annotations

from flask.views import MethodView

from .. import auth, policy
from .blueprint import Blueprint
from .schemas import Policy

PREFIX = "/policy"
blp = Blueprint("policy", __name__, description="Who may do what (the authorisation table)")


@blp.route("")
class PolicyResource(MethodView):
    @blp.response(200, Policy)
    def get(self):
        """Every rule (holder → action, resource type, scope) and what each holder may grant."""
        policy.authorize(auth.current_user(), "read", "policy")
        return policy.table()
