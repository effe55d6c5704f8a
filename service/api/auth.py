from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import auth, db
from .schemas import Token, TokenRequest

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Sign in")


@blp.route("/token")
class TokenResource(MethodView):
    @blp.arguments(TokenRequest)
    @blp.response(200, Token)
    def post(self, body):
        """Exchange a username and password for a bearer token."""
        with db.unit_of_work() as s:
            raw, token, _user = auth.login(s, body["username"], body["password"])
            ttl = int((token.expires_at - token.created_at).total_seconds())
        return {"access_token": raw, "token_type": "Bearer", "expires_in": ttl}
