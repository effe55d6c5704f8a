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
    # Designer code (scripts, conditions, expressions, templates) runs in worker processes with hard
    # limits (engine/isolation.py): seconds per evaluation, bytes of address space per worker, bytes
    # of result (task data) a script may hand back, workers at most, and seconds a step waits for a
    # free worker before it fails with an incident.
    script_time_limit: float = 2.0
    script_memory_limit: int = 256 * 1024 * 1024
    script_result_limit: int = 1024 * 1024
    script_workers: int = 4
    script_worker_wait: float = 10.0
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
    # Backups (service/backup.py): the second location — another disk or mount in production;
    # None means <data dir>/backups. The newest backup_keep backups are kept.
    backup_dir: Path | None = None
    backup_keep: int = 7
    # A copy of every verified backup goes to backup_copy_dir (INKLESS_BACKUP_COPY_DIR: a third
    # place — another machine's mount, removable media) and is verified there on its own.
    backup_copy_dir: Path | None = None
    # The audit chain (service/audit_chain.py, R-SEC-3, R-SEC-8): HMAC keys from INKLESS_AUDIT_KEY
    # (base64, current first) or else key files in <data dir>/keys/audit/; a signed checkpoint every
    # audit_checkpoint_minutes, in the backup location and in audit_checkpoint_file (default
    # <data dir>/audit/checkpoint.json: point it at another disk); rows older than
    # audit_retention_days (at least 180, MLPS 2.0 level 3's six months) move to signed archive files.
    audit_keys: list[bytes] = field(default_factory=list)
    audit_checkpoint_minutes: int = 60
    audit_checkpoint_file: Path | None = None
    audit_retention_days: int = 400
    # Identity (R-SEC-1, R-SEC-2, R-SEC-6): every setting here is explicit and shown to administrators.
    # A second factor is required of these roles; "group:<code>" names a functional group. Enforcement
    # is on for every deployment; the test suite's app fixture turns it off so tests that are not about
    # sign-in can use password-only accounts, and the identity tests turn it back on.
    mfa_enforced: bool = True
    mfa_required_roles: tuple[str, ...] = ("system_admin", "dept_admin", "group:platform_admin")
    # Account lockout: this many failed sign-ins within the window lock the account until fewer remain.
    lockout_threshold: int = 5
    lockout_window_seconds: int = 15 * 60
    # Per client address on the sign-in endpoints (Flask-Limiter notation); storage "memory://" keeps
    # counts per process, a redis:// or memcached:// URL shares them between workers.
    ratelimit_enabled: bool = True
    login_rate_limit: str = "10 per minute"
    ratelimit_storage: str = "memory://"
    # "asvs" (OWASP ASVS 4 V2.1: >= 12 characters, no composition rules, no expiry) or
    # "mlps3" (GB/T 22239 level 3: >= 8 characters of three classes, changed every 90 days).
    password_profile: str = "asvs"
    # Page sessions end after this long without a request, and in any case this long after sign-in.
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 3600
    # WebAuthn relying party: by default the request's host and origin; set both behind a proxy.
    webauthn_rp_id: str | None = None
    webauthn_origin: str | None = None
    # Every request that hands out an instance, a task or a user record leaves one audit row naming
    # them (service/audit_log.py, R-SEC-4); INKLESS_READ_AUDIT=0 turns it off.
    read_audit: bool = True
    # The anomaly review's thresholds (service/anomaly.py THRESHOLDS): INKLESS_ANOMALY_<NAME>=<number>.
    anomaly_thresholds: dict = field(default_factory=dict)
    # INKLESS_CLOCK_START (ISO 8601 with offset): the process's clock starts at this moment and
    # runs on. For the test suite's servers and for demos of deadlines; never set in production.
    clock_start: str | None = None
    # `inkless serve`/`init`/`worker` wait this many seconds for a database that does not answer
    # at start (service/startup.py); 0 (or --no-wait) gives up at once.
    database_wait: float = 60.0
    # Proxies in front of the app (nginx: 1) whose X-Forwarded-For/-Proto/-Host/-Port/-Prefix are
    # believed (werkzeug's ProxyFix); 0 believes none, as a server reached directly must.
    proxy_hops: int = 0

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
        if env.get("INKLESS_BACKUP_DIR"):
            cfg.backup_dir = Path(env["INKLESS_BACKUP_DIR"]).resolve()
        if env.get("INKLESS_BACKUP_COPY_DIR"):
            cfg.backup_copy_dir = Path(env["INKLESS_BACKUP_COPY_DIR"]).resolve()
        if env.get("INKLESS_BACKUP_KEEP"):
            cfg.backup_keep = int(env["INKLESS_BACKUP_KEEP"])
        cfg.clock_start = env.get("INKLESS_CLOCK_START") or None
        if env.get("INKLESS_DB_WAIT"):
            cfg.database_wait = max(0.0, float(env["INKLESS_DB_WAIT"]))
        _audit_from_env(cfg, env)
        cfg.proxy_hops = int(env.get("INKLESS_PROXY_HOPS", "0"))
        if "INKLESS_INSECURE_COOKIES" in env:
            cfg.session_cookie_secure = False
        _identity_from_env(cfg, env)
        _scripts_from_env(cfg, env)
        _anomaly_from_env(cfg, env)
        for key, value in overrides.items():
            setattr(cfg, key, value)
        if cfg.audit_retention_days < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(f"INKLESS_AUDIT_RETENTION_DAYS must be at least {MIN_AUDIT_RETENTION_DAYS} "
                             "(audit records are kept six months at least)")
        return cfg


MIN_AUDIT_RETENTION_DAYS = 180


def _audit_from_env(cfg: Config, env) -> None:
    if env.get("INKLESS_AUDIT_KEY"):
        from .documents.settings import parse_keys

        cfg.audit_keys = parse_keys(env["INKLESS_AUDIT_KEY"], "INKLESS_AUDIT_KEY")
    if env.get("INKLESS_AUDIT_CHECKPOINT"):
        cfg.audit_checkpoint_file = Path(env["INKLESS_AUDIT_CHECKPOINT"]).resolve()
    for name, attr in (("INKLESS_AUDIT_CHECKPOINT_MINUTES", "audit_checkpoint_minutes"),
                       ("INKLESS_AUDIT_RETENTION_DAYS", "audit_retention_days")):
        if env.get(name):
            setattr(cfg, attr, int(env[name]))


def _identity_from_env(cfg: Config, env) -> None:
    if "INKLESS_MFA_ENFORCED" in env:
        cfg.mfa_enforced = env["INKLESS_MFA_ENFORCED"].strip().lower() not in ("0", "false", "no", "off")
    if "INKLESS_MFA_REQUIRED_ROLES" in env:
        cfg.mfa_required_roles = tuple(r.strip() for r in env["INKLESS_MFA_REQUIRED_ROLES"].split(",") if r.strip())
    if "INKLESS_RATELIMIT_STORAGE" in env:
        cfg.ratelimit_storage = env["INKLESS_RATELIMIT_STORAGE"]
    if "INKLESS_LOGIN_RATE_LIMIT" in env:
        cfg.login_rate_limit = env["INKLESS_LOGIN_RATE_LIMIT"]
    cfg.webauthn_rp_id = env.get("INKLESS_WEBAUTHN_RP_ID") or cfg.webauthn_rp_id
    cfg.webauthn_origin = env.get("INKLESS_WEBAUTHN_ORIGIN") or cfg.webauthn_origin
    if "INKLESS_PASSWORD_PROFILE" in env:
        cfg.password_profile = env["INKLESS_PASSWORD_PROFILE"]
    for name, attr in (("INKLESS_LOCKOUT_THRESHOLD", "lockout_threshold"),
                       ("INKLESS_LOCKOUT_WINDOW_SECONDS", "lockout_window_seconds"),
                       ("INKLESS_SESSION_IDLE_SECONDS", "session_idle_seconds"),
                       ("INKLESS_SESSION_ABSOLUTE_SECONDS", "session_absolute_seconds")):
        if name in env:
            setattr(cfg, attr, int(env[name]))
    if cfg.password_profile not in ("asvs", "mlps3"):
        raise ValueError(f"INKLESS_PASSWORD_PROFILE must be asvs or mlps3, not {cfg.password_profile!r}")


def _anomaly_from_env(cfg: Config, env) -> None:
    if "INKLESS_READ_AUDIT" in env:
        cfg.read_audit = env["INKLESS_READ_AUDIT"].strip().lower() not in ("0", "false", "no", "off")
    prefix = "INKLESS_ANOMALY_"
    cfg.anomaly_thresholds = {name[len(prefix):].lower(): float(value) for name, value in env.items()
                              if name.startswith(prefix)}


def _scripts_from_env(cfg: Config, env) -> None:
    for name, attr, kind in (("INKLESS_SCRIPT_TIME_LIMIT", "script_time_limit", float),
                             ("INKLESS_SCRIPT_MEMORY_MB", "script_memory_limit", int),
                             ("INKLESS_SCRIPT_RESULT_KB", "script_result_limit", int),
                             ("INKLESS_SCRIPT_WORKERS", "script_workers", int),
                             ("INKLESS_SCRIPT_WORKER_WAIT", "script_worker_wait", float)):
        if name in env:
            value = kind(env[name])
            if attr == "script_memory_limit":
                value *= 1024 * 1024
            elif attr == "script_result_limit":
                value *= 1024
            setattr(cfg, attr, value)
    if cfg.script_time_limit <= 0 or cfg.script_memory_limit < 64 * 1024 * 1024 or cfg.script_workers < 1:
        raise ValueError("script limits: the time limit must be positive, the memory limit at least 64 MB "
                         "and there must be at least one worker")


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
