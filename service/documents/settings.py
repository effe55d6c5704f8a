"""The document library's settings, read once when the API is registered.

They are read from the application's Config when it has the attribute (so tests and a future
Config field win), else from the environment:

| setting | environment | default |
|---|---|---|
| max_upload_bytes | INKLESS_DOCUMENT_MAX_BYTES | 2 GiB |
| cipher | INKLESS_DOCUMENT_CIPHER (`AES-256-GCM` or `SM4-GCM`) | AES-256-GCM |
| master_keys | INKLESS_MASTER_KEY (base64 32-byte keys, comma-separated, current first) | key files in `<data dir>/keys/` |
| archive_after_days | INKLESS_ARCHIVE_AFTER_DAYS | 1095 |
| retention_days | INKLESS_DOCUMENT_RETENTION_DAYS | 180 |
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app

EXTENSION = "inkless.documents"


@dataclass
class DocumentSettings:
    blob_dir: Path
    key_dir: Path
    max_upload_bytes: int = 2 * 1024**3
    cipher: str = "AES-256-GCM"
    master_keys: list[bytes] = field(default_factory=list)
    chunk_size: int = 1024 * 1024
    archive_after_days: int = 3 * 365
    retention_days: int = 180
    # Text extraction reads at most this much of a file and indexes at most index_chars of text:
    # search stays useful and a 1 GB upload does not become 1 GB of index.
    extract_max_bytes: int = 64 * 1024 * 1024
    index_chars: int = 200_000


def _value(config, attr: str, env: str, default, cast):
    if hasattr(config, attr):
        return getattr(config, attr)
    raw = os.environ.get(env)
    return default if raw in (None, "") else cast(raw)


def parse_keys(raw: str, setting: str = "INKLESS_MASTER_KEY") -> list[bytes]:
    """Base64 32-byte keys, comma-separated, current first (the master keys and the audit keys)."""
    keys = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            key = base64.b64decode(part, validate=True)
        except binascii.Error:
            raise ValueError(f"{setting} must be base64 (e.g. `openssl rand -base64 32`)") from None
        if len(key) != 32:
            raise ValueError(f"{setting} keys must be 32 bytes")
        keys.append(key)
    return keys


def from_config(config) -> DocumentSettings:
    data_dir = Path(config.data_dir)
    settings = DocumentSettings(blob_dir=data_dir / "blobs", key_dir=data_dir / "keys")
    settings.max_upload_bytes = _value(config, "document_max_bytes", "INKLESS_DOCUMENT_MAX_BYTES",
                                       settings.max_upload_bytes, int)
    settings.cipher = _value(config, "document_cipher", "INKLESS_DOCUMENT_CIPHER", settings.cipher, str).upper()
    settings.master_keys = _value(config, "master_keys", "INKLESS_MASTER_KEY", [], parse_keys)
    settings.archive_after_days = _value(config, "archive_after_days", "INKLESS_ARCHIVE_AFTER_DAYS",
                                         settings.archive_after_days, int)
    settings.retention_days = _value(config, "document_retention_days", "INKLESS_DOCUMENT_RETENTION_DAYS",
                                     settings.retention_days, int)
    from .crypto import SUITES

    if settings.cipher not in SUITES:
        raise ValueError(f"INKLESS_DOCUMENT_CIPHER must be one of {', '.join(SUITES)}")
    return settings


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = from_config(app.config["INKLESS"])


def current() -> DocumentSettings:
    return current_app.extensions[EXTENSION]
