"""The REST API under /api/v1, documented at /api/docs (flask-smorest)."""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from . import (
    analytics,
    auth,
    definitions,
    documents,
    instances,
    maintenance,
    messages,
    notifications,
    org,
    policy,
    studio,
    supervision,
    tasks,
)


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Inkless",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/api/swagger-ui/",
    )
    api = Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    for module in (auth, definitions, instances, tasks, messages, notifications, org, policy, documents, supervision, analytics, studio,
                   maintenance):
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    return api
