from __future__ import annotations

from flask import g
from flask.views import MethodView

from .. import auth, db, ratelimit
from .blueprint import Blueprint
from .schemas import SessionList, Token, TokenRequest

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Sign in, and my sessions and tokens")


@blp.route("/token")
class TokenResource(MethodView):
    @blp.arguments(TokenRequest)
    @blp.response(200, Token)
    def post(self, body):
        """Exchange a username, password and — for an account with a second factor — a one-time
        code (`otp`) for a bearer token. Rate-limited per client address."""
        ratelimit.sign_in_attempt()
        with db.unit_of_work() as s:
            raw, token, _user = auth.login(s, body["username"], body["password"], otp=body["otp"])
            ttl = int((token.expires_at - token.created_at).total_seconds())
        return {"access_token": raw, "token_type": "Bearer", "expires_in": ttl}


@blp.route("/tokens")
class MyTokens(MethodView):
    @blp.response(200, SessionList)
    def get(self):
        """My open page sessions and API tokens."""
        user = auth.current_user()
        rows = auth.my_tokens(db.session(), user)
        for row in rows:
            row.current = g.token is not None and row.id == g.token.id
        return {"items": rows}


@blp.route("/tokens/<int:token_id>")
class MyToken(MethodView):
    @blp.response(204)
    def delete(self, token_id):
        """End one of my sessions or tokens (takes effect on its next request)."""
        user = auth.current_user()
        with db.unit_of_work() as s:
            auth.revoke_mine(s, user, token_id)
