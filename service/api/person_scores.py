"""Scores per person, quarterly (R-SUP-3, R-SUP-5): each person's figures and score, visible to
themselves, the head of their department, the supervision group and system administrators
(`service.person_scores`)."""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate

from .. import auth, db, person_scores
from .analytics import PeriodOut
from .blueprint import Blueprint

PREFIX = "/person-scores"
blp = Blueprint("person_scores", __name__, description="Quarterly scores per person (R-SUP-3, R-SUP-5)")


class ScoreArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    period = fields.String(load_default=None, validate=validate.Length(max=32),
                           metadata={"description": "a quarter such as 2026-Q4; default the current quarter so far"})


class ScoreListArgs(ScoreArgs):
    department = fields.String(load_default=None, validate=validate.Length(max=64),
                               metadata={"description": "a department code: that department's people only"})


class PersonScoreOut(Schema):
    username = fields.String()
    full_name = fields.String()
    department = fields.String(metadata={"description": "department code"})
    department_name = fields.String()
    used = fields.Boolean(metadata={"description": "took part in a process or filed a document in the period"})
    usage_rate = fields.Float(metadata={"description": "1 if used, else 0"})
    tasks_completed = fields.Integer()
    instances_started = fields.Integer()
    documents_filed = fields.Integer()
    due_tasks = fields.Integer(metadata={"description": "tasks with a due date done in the period, and those "
                                                        "flagged overdue and still open at its end"})
    on_time_tasks = fields.Integer()
    late_tasks = fields.Integer()
    overdue_open_tasks = fields.Integer()
    timeliness_rate = fields.Float(allow_none=True, metadata={"description": "on_time_tasks / due_tasks"})
    submissions = fields.Integer(metadata={"description": "requests they submitted that were decided in the period"})
    submissions_passed = fields.Integer()
    submissions_first_pass = fields.Integer()
    approval_pass_rate = fields.Float(allow_none=True)
    first_pass_rate = fields.Float(allow_none=True)
    score = fields.Float(allow_none=True, metadata={
        "description": "0–100 from the assessment weights (assessment_weights.dmn), security left out; "
                       "null when no figure applies"})


class PersonScoreOne(PersonScoreOut):
    period = fields.Nested(PeriodOut)


class PersonScoreList(Schema):
    period = fields.Nested(PeriodOut)
    items = fields.List(fields.Nested(PersonScoreOut))


@blp.route("")
class Scores(MethodView):
    @blp.arguments(ScoreListArgs, location="query")
    @blp.response(200, PersonScoreList)
    def get(self, args):
        """The scores the caller may see: their own; as a department's head, its people's; as a
        supervisor or system administrator, everyone's."""
        return person_scores.scores(db.session(), auth.current_user(), args["period"], args["department"])


@blp.route("/me")
class MyScore(MethodView):
    @blp.arguments(ScoreArgs, location="query")
    @blp.response(200, PersonScoreOne)
    def get(self, args):
        """The caller's own score."""
        user = auth.current_user()
        return person_scores.score_of(db.session(), user, user.username, args["period"])


@blp.route("/<string:username>")
class PersonScore(MethodView):
    @blp.arguments(ScoreArgs, location="query")
    @blp.response(200, PersonScoreOne)
    def get(self, args, username):
        """One person's score; 404 for a person the caller may not see."""
        return person_scores.score_of(db.session(), auth.current_user(), username, args["period"])
