"""Inkless: the Flask application."""
from __future__ import annotations

from flask import Flask, request

from .config import Config


def _start_clock(start: str) -> None:
    from datetime import datetime

    from engine import clock

    clock.set_provider(clock.TickingClock(datetime.fromisoformat(start)))


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    if config.clock_start:
        _start_clock(config.clock_start)
    app = Flask(__name__, instance_path=str(config.data_dir))
    app.config["INKLESS"] = config
    app.config["SECRET_KEY"] = config.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = config.session_cookie_secure
    # The __Host- prefix binds the cookie to this host and path / over HTTPS (browsers refuse it on
    # plain HTTP, hence only with Secure).
    app.config["SESSION_COOKIE_NAME"] = "__Host-inkless" if config.session_cookie_secure else "inkless"
    app.config["TESTING"] = config.testing
    app.json.ensure_ascii = False

    from . import (
        api,
        audit_log,
        auth,
        bounds,
        csrf,
        db,
        designer_names,
        errors,
        health,
        i18n,
        jobs,
        outage,
        pages,
        ratelimit,
    )

    # Before any route is added: every <int:…> in the app is a 64-bit id (service/bounds.py).
    app.url_map.converters["int"] = bounds.IdConverter
    db.init_app(app, config.database_url)
    i18n.init_app(app)
    designer_names.init_app(app)
    ratelimit.init_app(app)
    auth.init_app(app)
    csrf.init_app(app)
    api.init_app(app)
    pages.init_app(app)
    errors.register(app)
    outage.register(app)
    health.register(app)
    audit_log.init_app(app)
    jobs.register()
    if config.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = config.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    return app
