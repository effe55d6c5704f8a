"""Rate limits per client address (Flask-Limiter): one `limiter` for the whole app.

Views opt in with `@limiter.limit(...)`; nothing is limited by default. The counters live in
memory unless `INKLESS_RATELIMIT_STORAGE` names a shared store (e.g. `redis://…`): with several
server processes, in-memory counters are per process, so the effective limit is that many times
higher. Behind a reverse proxy, the proxy's address is the client address unless the app is
wrapped in werkzeug's ProxyFix.
"""
from __future__ import annotations

import os

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", os.environ.get("INKLESS_RATELIMIT_STORAGE", "memory://"))
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
