"""The REST API under /api/v1, documented at /api/docs (flask-smorest)."""
from __future__ import annotations

import flask_smorest
from flask import Flask, render_template

from . import (
    analytics,
    audit,
    auth,
    definitions,
    documents,
    groups,
    inspection,
    instances,
    maintenance,
    messages,
    notifications,
    org,
    performance,
    person_scores,
    policy,
    studio,
    substitutes,
    supervision,
    tasks,
)
from .schemas import ErrorOut


class Api(flask_smorest.Api):
    # The shape service/errors.py sends, not flask-smorest's (whose `code` is the HTTP status).
    ERROR_SCHEMA = ErrorOut


def _api_docs():
    from ..pages import CSP  # the workspace's strict policy: scripts and styles from 'self' only

    return render_template("api_docs.html"), 200, {"Content-Security-Policy": CSP}


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Inkless",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    for module in (auth, audit, definitions, instances, tasks, messages, notifications, org, groups, policy, documents, supervision, analytics, studio, inspection, performance,
                   person_scores, substitutes,
                   maintenance):
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    # Swagger UI from the platform's own static files (make assets copies it from npm), not a CDN,
    # and without flask-smorest's inline script, so the page works on a closed network under a CSP.
    app.add_url_rule("/api/docs", "api_docs", _api_docs)
    return api
