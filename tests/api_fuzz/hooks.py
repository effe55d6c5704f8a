"""Schemathesis hooks for tests/api_fuzz (loaded through SCHEMATHESIS_HOOKS).

The fuzzer signs in as FUZZ_USERNAME through the API itself. It may end its own sessions
(DELETE /users/{id}/sessions, /auth/tokens/{id}) or reset its own password: a 401 makes
schemathesis fetch a new token, and a reset of our own password is followed by the new one."""
from __future__ import annotations

import json
import os
import threading
import urllib.request

import schemathesis

_lock = threading.Lock()
_credentials = {"username": os.environ.get("FUZZ_USERNAME", ""), "password": os.environ.get("FUZZ_PASSWORD", "")}


@schemathesis.auth(refresh_interval=600)
class BearerToken:
    def get(self, case, context):
        base = os.environ["FUZZ_BASE_URL"]
        with _lock:
            body = json.dumps(_credentials).encode()
        request = urllib.request.Request(f"{base}/api/v1/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def after_call(context, case, response):
    if response.status_code != 200 or not case.operation.path.endswith("/password-reset"):
        return
    try:
        answer = response.json()
    except ValueError:
        return
    if isinstance(answer, dict) and answer.get("username") == _credentials["username"]:
        with _lock:
            _credentials["password"] = answer["temporary_password"]
