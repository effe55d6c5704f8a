"""Configuration, read once from the environment at start."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Config:
    data_dir: Path
    database_url: str
    secret_key: str
    token_ttl_seconds: int = 8 * 3600
    # Finished tasks kept in an instance's engine state above its open tasks (history lives in
    # the history table; see engine/codec.py).
    keep_history: int = 12
    script_time_limit: float = 2.0
    process_models_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent / "process_models")
    forms_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent / "forms")
    # argon2 cost; tests lower it (OWASP's minimum is m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19 * 1024
    session_cookie_secure: bool = True
    testing: bool = False
    # Optional e-mail for notifications (the in-app inbox always works).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str = "inkless@localhost"
    default_locale: str = "zh"

    @classmethod
    def from_env(cls, **overrides) -> Config:
        env = os.environ
        data_dir = Path(overrides.pop("data_dir", None) or env.get("INKLESS_DATA_DIR", "./instance")).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = overrides.pop("database_url", None) or env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'inkless.db'}"
        if database_url.startswith("postgres://"):
            database_url = "postgresql://" + database_url[len("postgres://"):]
        if database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
        secret_key = overrides.pop("secret_key", None) or env.get("INKLESS_SECRET_KEY") or _stored_secret(data_dir)
        cfg = cls(data_dir=data_dir, database_url=database_url, secret_key=secret_key)
        if env.get("INKLESS_SMTP_HOST"):
            cfg.smtp_host = env["INKLESS_SMTP_HOST"]
            cfg.smtp_port = int(env.get("INKLESS_SMTP_PORT", "25"))
            cfg.smtp_sender = env.get("INKLESS_SMTP_SENDER", cfg.smtp_sender)
        if "INKLESS_INSECURE_COOKIES" in env:
            cfg.session_cookie_secure = False
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg


def _stored_secret(data_dir: Path) -> str:
    """Generate the secret key once and keep it in the data directory (never in the repo)."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
