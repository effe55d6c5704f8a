"""Time refused sign-ins per kind of account, at the product's argon2 cost (ASVS 2.2.1).

    python bench/sign_in_timing.py [--rounds 30]

A fresh SQLite data directory (a temporary directory, removed at the end) holds one department and
users: one active, one locked by five wrong passwords, and per round one deactivated and one for a
wrong password; another name does not exist. Each round signs in once per case, in turn, through
the API (POST /api/v1/auth/token) and the page (POST /signin) with Flask's test client; the median
and the spread per case are printed. The cases should not be told apart: the same argon2 work and the same answer.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import update  # noqa: E402

from service import create_app, migrate, org  # noqa: E402
from service.config import Config  # noqa: E402
from service.models import User  # noqa: E402

PASSWORD = "bench password 12"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# The wrong password and the deactivated account take a user of their own each round: every refusal
# counts towards the lockout, and a locked account is a case of its own.
CASES = {"unknown user": ("nobody", PASSWORD), "wrong password": ("wrong{round}", "not the password"),
         "deactivated": ("inactive{round}", PASSWORD), "locked": ("locked", PASSWORD), "success": ("active", PASSWORD)}


def setup(app, rounds: int) -> None:
    with app.test_request_context():
        s = app.extensions["inkless.db"]()
        org.create_department(s, "HQ", "总部")
        inactive = [f"inactive{i}" for i in range(rounds)]
        for name in ("active", "locked", *inactive, *(f"wrong{i}" for i in range(rounds))):
            org.create_user(s, name, PASSWORD, "HQ", "user", [], False)
        s.execute(update(User).where(User.username.in_(inactive)).values(active=False))
        s.commit()
        s.close()
    client = app.test_client()
    for _ in range(app.config["INKLESS"].lockout_threshold):
        client.post("/api/v1/auth/token", json={"username": "locked", "password": "wrong"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="inkless-bench-signin-"))
    try:
        app = create_app(Config.from_env(data_dir=root / "data", secret_key="bench", testing=True,
                                         ratelimit_enabled=False, mfa_enforced=False,
                                         session_cookie_secure=False))
        migrate.upgrade(app.extensions["inkless.engine"])
        setup(app, args.rounds)
        cfg = app.config["INKLESS"]
        print(f"argon2id t={cfg.argon2_time_cost} m={cfg.argon2_memory_cost} KiB p=1, {args.rounds} rounds")
        client = app.test_client()
        times: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for case, (name, password) in CASES.items():
                username = name.format(round=round_)
                for channel in ("api", "page"):
                    if channel == "page":  # a fresh browser with the form's CSRF token, not timed
                        browser = app.test_client()
                        csrf = CSRF.search(browser.get("/signin").get_data(as_text=True)).group(1)
                    started = time.perf_counter()
                    if channel == "api":
                        r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
                    else:
                        r = browser.post("/signin", data={"username": username, "password": password, "csrf_token": csrf})
                    times.setdefault((case, channel), []).append((time.perf_counter() - started) * 1000)
                    assert (r.status_code in (200, 302)) == (case == "success"), (case, channel, r.status_code)
        print(f"{'case':16} {'channel':7} {'median ms':>9} {'p10':>6} {'p90':>6}")
        for (case, channel), values in times.items():
            deciles = statistics.quantiles(values, n=10)
            print(f"{case:16} {channel:7} {statistics.median(values):9.1f} {deciles[0]:6.1f} {deciles[-1]:6.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
