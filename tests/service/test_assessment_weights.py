"""R-SUP-3, R-SUP-5 (issue 18): the reference score's weights are a decision table the supervision
group keeps, process_models/assessment_weights.dmn, read from the newest deployed version when
the indicators are computed — not constants in Python.

The table as shipped gives the weights the code used to have (30 usage, 30 timeliness, 20 approval
pass, 20 security; the security component reaches 0 at 20 incidents per 100 users), so scores are
unchanged; a changed table deployed through the API changes the scores the dashboard and the
quarterly assessment hand to the supervision group.
"""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select

from service.models import AuditEvent, DeploymentFile, ProcessDefinition
from service.procedures.indicators import (
    WEIGHTED,
    Weights,
    assessment_weights,
    compute,
    quarter,
    reference_score,
)
from service.services import ServiceFailure
from tests.service.test_quarterly_assessment import _start_by_hand

Q4, Q1 = quarter("2026-Q4"), quarter("2027-Q1")
OLD_WEIGHTS = {"usage_rate": 30, "timeliness_rate": 30, "approval_pass_rate": 20, "security": 20}
OLD_ZERO_AT = 20.0
NEW_WEIGHTS = {"usage_rate": 10, "timeliness_rate": 30, "approval_pass_rate": 20, "security": 40}
NEW_ZERO_AT = 10.0

# Hand-built department figures, with the scores worked out by hand under the old and the new weights.
FIGURES = [
    # 100·(30·0.8 + 30·2/7 + 20·0.5 + 20·0)/100; new: 100·(10·0.8 + 30·2/7 + 20·0.5 + 40·0)/100
    ({"usage_rate": 0.8, "timeliness_rate": 2 / 7, "approval_pass_rate": 0.5, "security_incident_rate": 60.0},
     42.6, 26.6),
    # only usage and security: 100·(30·1 + 20·0.5)/50; new: 100·(10·1 + 40·0)/50
    ({"usage_rate": 1.0, "timeliness_rate": None, "approval_pass_rate": None, "security_incident_rate": 10.0},
     80.0, 20.0),
    # 100·(30·0.5 + 30·0.9 + 20·0.75 + 20·0.75)/100; new: 100·(10·0.5 + 30·0.9 + 20·0.75 + 40·0.5)/100
    ({"usage_rate": 0.5, "timeliness_rate": 0.9, "approval_pass_rate": 0.75, "security_incident_rate": 5.0},
     72.0, 67.0),
    ({"usage_rate": None, "timeliness_rate": None, "approval_pass_rate": None, "security_incident_rate": None},
     None, None),
]


def formula(figures: dict, weights: dict, zero_at: float) -> float | None:
    """docs/indicators.md §6, written out with the weights given."""
    parts = {"usage_rate": figures["usage_rate"], "timeliness_rate": figures["timeliness_rate"],
             "approval_pass_rate": figures["approval_pass_rate"],
             "security": None if figures["security_incident_rate"] is None
             else max(0.0, 1.0 - figures["security_incident_rate"] / zero_at)}
    used = sum(weights[k] for k, v in parts.items() if v is not None)
    return round(100.0 * sum(weights[k] * v for k, v in parts.items() if v is not None) / used, 1) if used else None


@pytest.fixture
def session(app, org, frozen):
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        yield s
        s.close()


def _models(app):
    return app.config["INKLESS"].process_models_dir


def _shipped(app) -> str:
    return (_models(app) / "assessment_weights.dmn").read_text(encoding="utf-8")


def _with_outputs(table: str, weights: dict, zero_at: float) -> str:
    for key, value in {**weights, "security_zero_at": zero_at}.items():
        table, n = re.subn(rf'(<outputEntry id="rule_weights_{key}"><text>)[^<]*(</text>)', rf"\g<1>{value}\g<2>", table)
        assert n == 1, key
    return table


def _deploy(app, login, table: str) -> int:
    """A new version of quarterly_assessment carrying `table`, through the REST API as the system
    administrator (the permission table lets them deploy a built-in procedure); its deployment id."""
    files = [(io.BytesIO((_models(app) / name).read_bytes()), name)
             for name in ("quarterly_assessment.bpmn", "assessment_grade.dmn")]
    files.append((io.BytesIO(table.encode()), "assessment_weights.dmn"))
    admin = login("sysadmin")
    r = admin.client.post("/api/v1/process-definitions", data={"files": files},
                          content_type="multipart/form-data", headers=admin._headers())
    assert r.status_code == 201, r.get_json()
    assert [d["key"] for d in r.get_json()["items"]] == ["quarterly_assessment"]
    s = app.extensions["inkless.db"]()
    try:
        return s.scalar(select(ProcessDefinition.deployment_id).where(ProcessDefinition.key == "quarterly_assessment")
                        .order_by(ProcessDefinition.version.desc()).limit(1))
    finally:
        s.close()


def _as_dict(weights: Weights) -> tuple[dict, float]:
    return {k: weights.of(k) for k in WEIGHTED}, weights.security_zero_at


def test_the_shipped_table_scores_as_the_old_weights_did(app, session):
    """R-SUP-3: the deployed table (installed with quarterly_assessment) gives 30/30/20/20 and a zero
    point of 20, and every score is what the weights in the code gave — for hand-built figures and
    for the whole computation."""
    deployment = session.scalar(select(ProcessDefinition.deployment_id)
                                .where(ProcessDefinition.key == "quarterly_assessment"))
    weights = assessment_weights(session, Q4.start)
    assert weights.source == f"assessment_weights.dmn (deployment {deployment})"
    assert _as_dict(weights) == (OLD_WEIGHTS, OLD_ZERO_AT)
    for figures, old, _new in FIGURES:
        assert reference_score(figures, weights) == formula(figures, OLD_WEIGHTS, OLD_ZERO_AT) == old
        assert reference_score(figures) == old  # without weights: the table file

    result = compute(session, Q4.start, Q4.end)
    assert result.weights == weights
    scored = {code: d for code, d in result.departments.items() if d["active_users"]}
    assert scored  # the organisation's departments
    for d in [*scored.values(), result.platform]:
        assert d["reference_score"] == formula(d, OLD_WEIGHTS, OLD_ZERO_AT)


def test_an_old_database_without_the_table_reads_the_file_in_process_models(app, session):
    """R-SUP-3: a database where the table was never deployed falls back to the table file, not to
    numbers in the code."""
    session.execute(delete(DeploymentFile).where(DeploymentFile.name == "assessment_weights.dmn"))
    session.flush()
    weights = assessment_weights(session, Q4.start)
    assert weights.source == str(_models(app) / "assessment_weights.dmn")
    assert _as_dict(weights) == (OLD_WEIGHTS, OLD_ZERO_AT)
    assert reference_score(FIGURES[0][0], weights) == 42.6
    session.rollback()


def test_a_changed_table_deployed_through_the_api_changes_the_scores(app, login, session, frozen):
    """R-SUP-3, R-SUP-5: the supervision group's new weights (10 usage, 30 timeliness, 20 approval,
    40 security, zero at 10 incidents per 100 users), deployed with quarterly_assessment, give the
    scores of the next computation: the hand-built figures, the dashboard and the quarterly assessment."""
    session.commit()  # end the read: SQLite has one writer
    deployment = _deploy(app, login, _with_outputs(_shipped(app), NEW_WEIGHTS, NEW_ZERO_AT))

    weights = assessment_weights(session, Q4.start)
    assert weights.source == f"assessment_weights.dmn (deployment {deployment})"
    assert _as_dict(weights) == (NEW_WEIGHTS, NEW_ZERO_AT)
    for figures, old, new in FIGURES:
        assert reference_score(figures, weights) == formula(figures, NEW_WEIGHTS, NEW_ZERO_AT) == new
        if old is not None:
            assert new != old
    session.commit()

    # The dashboard: nobody did anything in the quarter, so usage 0, no incidents (security 1):
    # 100·(10·0 + 40·1)/50 = 80, where the old weights gave 100·(30·0 + 20·1)/50 = 40.
    departments = login("supervisor").get("/api/v1/analytics/indicators", query_string={"period": "2026-Q4"}
                                          ).get_json()["departments"]
    assert {code: d["reference_score"] for code, d in departments.items() if d["active_users"]} == {
        "FIN": 80.0, "HQ": 80.0, "OFFICE": 80.0, "PLATFORM": 80.0}
    for d in departments.values():
        if d["active_users"]:
            assert d["reference_score"] == formula(d, NEW_WEIGHTS, NEW_ZERO_AT)
            assert formula(d, OLD_WEIGHTS, OLD_ZERO_AT) == 40.0

    # The quarterly assessment the supervision group starts (version 2, carrying the table) hands
    # the same scores to the scorers, and its audit record names the table it weighed with.
    frozen.current = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    instance_id = _start_by_hand(login)
    s = app.extensions["inkless.db"]()
    try:
        computed = s.scalars(select(AuditEvent).where(AuditEvent.action == "indicators_computed")).one().detail
    finally:
        s.close()
    assert computed["instance"] == instance_id and computed["period"] == "2026-Q4"
    assert computed["weights"] == {**NEW_WEIGHTS, "security_zero_at": NEW_ZERO_AT,
                                   "source": f"assessment_weights.dmn (deployment {deployment})"}
    assert {code: d["reference_score"] for code, d in computed["departments"].items() if d["active_users"]} == {
        "FIN": 80.0, "HQ": 80.0, "OFFICE": 80.0, "PLATFORM": 80.0}


def test_new_weights_from_a_quarter_on_leave_earlier_periods_alone(app, login, session):
    """R-SUP-5: hit policy FIRST — a rule added above for periods from 2027-01-01 weighs 2027-Q1
    with the new weights, while 2026-Q4 keeps the rule below (the regulation's weights)."""
    outputs = "".join(f'        <outputEntry id="rule_2027_{key}"><text>{value}</text></outputEntry>\n'
                      for key, value in {**NEW_WEIGHTS, "security_zero_at": NEW_ZERO_AT}.items())
    newer = ('      <rule id="rule_2027">\n        <description>2027 年起的权重</description>\n'
             '        <inputEntry id="rule_2027_period_start"><text>&gt;= "2027-01-01"</text></inputEntry>\n'
             f"{outputs}      </rule>\n")
    shipped = _shipped(app)
    assert shipped.count('      <rule id="rule_weights">') == 1
    table = shipped.replace('      <rule id="rule_weights">', newer + '      <rule id="rule_weights">')
    session.commit()
    _deploy(app, login, table)
    assert _as_dict(assessment_weights(session, Q4.start)) == (OLD_WEIGHTS, OLD_ZERO_AT)
    assert _as_dict(assessment_weights(session, Q1.start)) == (NEW_WEIGHTS, NEW_ZERO_AT)


def test_a_table_that_gives_no_numbers_is_reported_naming_it(app, login, session):
    """R-SUP-3: weights that are not numbers are not guessed at: computing says which table is wrong."""
    session.commit()
    deployment = _deploy(app, login, _with_outputs(_shipped(app), {**OLD_WEIGHTS, "security": '"high"'}, OLD_ZERO_AT))
    with pytest.raises(ServiceFailure) as refused:
        compute(session, Q4.start, Q4.end)
    assert f"assessment_weights.dmn (deployment {deployment})" in str(refused.value)
    assert "security" in str(refused.value)
