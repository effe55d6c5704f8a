"""Master keys: they wrap the documents' data keys and never touch content themselves.

Keys come from INKLESS_MASTER_KEY (current first, older ones after it until a rotation has
re-wrapped everything) or, without it, from key files in `<data dir>/keys/`: one base64 key per
`<id>.key` file (mode 0600), `CURRENT` naming the one new data keys are wrapped with. The first
key file is generated on first use. A key's id is a truncated hash of the key, so the database
records which key wraps what without holding anything that helps to find the key.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from .crypto import CorruptObject


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"inkless-master-key-id|" + key).hexdigest()[:16]


class Keyring:
    def __init__(self, keys: list[bytes], key_dir: Path | None):
        self._key_dir = key_dir
        self._keys = {key_id(k): k for k in keys}
        self.current_id = key_id(keys[0]) if keys else None

    @classmethod
    def load(cls, configured: list[bytes], key_dir: Path) -> Keyring:
        if configured:
            return cls(configured, None)
        ring = cls([], key_dir)
        if key_dir.exists():
            for path in sorted(key_dir.glob("*.key")):
                key = base64.b64decode(path.read_text().strip())
                ring._keys[key_id(key)] = key
            current = key_dir / "CURRENT"
            if current.exists():
                ring.current_id = current.read_text().strip()
        if ring.current_id not in ring._keys:
            ring.current_id = None
        return ring

    @property
    def from_files(self) -> bool:
        return self._key_dir is not None

    def current(self) -> tuple[str, bytes]:
        if self.current_id is None:
            if not self.from_files:
                raise CorruptObject("no master key configured")
            self.current_id = self._generate()
            self._point_current(self.current_id)
        return self.current_id, self._keys[self.current_id]

    def get(self, kid: str) -> bytes:
        if kid not in self._keys and self.from_files:
            # Another process may have generated or rotated a key since this one loaded the ring.
            fresh = Keyring.load([], self._key_dir)
            self._keys.update(fresh._keys)
        try:
            return self._keys[kid]
        except KeyError:
            raise CorruptObject(f"master key {kid} is not available (INKLESS_MASTER_KEY or keys/)") from None

    def new_key_file(self) -> str:
        """A fresh master key on disk (rotation); `CURRENT` moves to it once re-wrapping committed."""
        if not self.from_files:
            raise CorruptObject("master keys come from INKLESS_MASTER_KEY: put the new key first there")
        return self._generate()

    def make_current(self, kid: str) -> None:
        self.get(kid)
        self.current_id = kid
        if self.from_files:
            self._point_current(kid)

    def _generate(self) -> str:
        self._key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        kid = key_id(key)
        fd = os.open(self._key_dir / f"{kid}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(key).decode())
            f.flush()
            os.fsync(f.fileno())
        self._keys[kid] = key
        return kid

    def _point_current(self, kid: str) -> None:
        tmp = self._key_dir / "CURRENT.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kid)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._key_dir / "CURRENT")
