"""The blob store under `<data dir>/blobs` (R-DOC-2, R-DOC-3, R-SEC-3).

    plain/ab/abcdef…   content at 公开/内部, named by its SHA-256: identical content is stored once
    enc/3f/3f9a…       content at 秘密 and above, encrypted (crypto.py), under a random name: a
                       plaintext-hash name would tell that two secret files are identical
    tmp/               uploads in progress

Writes go to tmp/, are fsynced, renamed into place and the directory fsynced; only then is the
database row committed, so a row never points at a missing blob. A crash in between leaves an
unreferenced file that `sweep` removes. Nothing here ever writes a confidential plaintext byte:
an upload whose level is not yet known is encrypted on its way in (see upload.py).
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .crypto import NONCE_PREFIX_SIZE, ContentMac, DecryptingReader, EncryptingWriter

READ_SIZE = 1024 * 1024


@dataclass
class Received:
    """What a sink wrote: enough to record a StoredObject."""

    name: str
    size: int
    digest: str  # SHA-256 (plain) or the per-document content MAC (encrypted)
    sha256: str  # of the plaintext; kept in memory only for encrypted objects
    algorithm: str = "none"
    chunk_size: int | None = None
    nonce_prefix: bytes | None = None
    staged: Path | None = None  # an encrypted object not yet moved into place


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        for sub in ("plain", "enc", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def plain_path(self, sha256: str) -> Path:
        return self.root / "plain" / sha256[:2] / sha256

    def encrypted_path(self, name: str) -> Path:
        return self.root / "enc" / name[:2] / name

    def path_of(self, name: str, algorithm: str) -> Path:
        return self.plain_path(name) if algorithm == "none" else self.encrypted_path(name)

    def _tmp(self) -> tuple[Path, BinaryIO]:
        path = self.root / "tmp" / secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return path, os.fdopen(fd, "wb")

    def _place(self, tmp: Path, final: Path) -> bool:
        """Move a finished temporary file into place; False if identical content was there already."""
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if final.exists():
            tmp.unlink()
            return False
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return True

    def plain_sink(self) -> PlainSink:
        return PlainSink(self)

    def encrypted_sink(self, algorithm: str, data_key: bytes, chunk_size: int) -> EncryptedSink:
        return EncryptedSink(self, algorithm, data_key, chunk_size)

    def place_encrypted(self, received: Received) -> None:
        self._place(received.staged, self.encrypted_path(received.name))
        received.staged = None

    def discard(self, received: Received) -> None:
        if received.staged is not None and received.staged.exists():
            received.staged.unlink()

    def open(self, name: str, algorithm: str, data_key: bytes | None = None, chunk_size: int | None = None,
             nonce_prefix: bytes | None = None, size: int = 0) -> BinaryIO:
        """The plaintext, seekable: a file for plain objects, a decrypting reader otherwise."""
        raw = open(self.path_of(name, algorithm), "rb")
        if algorithm == "none":
            return raw
        return DecryptingReader(raw, algorithm, data_key, name, chunk_size, nonce_prefix, size)

    def open_staged(self, received: Received, data_key: bytes) -> DecryptingReader:
        raw = open(received.staged, "rb")
        return DecryptingReader(raw, received.algorithm, data_key, received.name, received.chunk_size,
                                received.nonce_prefix, received.size)

    def copy_into(self, source: BinaryIO, sink) -> Received:
        """Stream one object into a sink (re-encryption, or a staged upload that proved plain)."""
        if isinstance(source, DecryptingReader):
            for chunk in source.chunks():
                sink.write(chunk)
        else:
            while chunk := source.read(READ_SIZE):
                sink.write(chunk)
        return sink.finish()

    def remove(self, name: str, algorithm: str) -> None:
        path = self.path_of(name, algorithm)
        if path.exists():
            path.unlink()

    def sweep(self, referenced: set[str], older_than: float) -> int:
        """Remove blobs no row refers to and temporary files, if older than `older_than` (epoch
        seconds): leftovers of crashes between writing a blob and committing its row."""
        removed = 0
        for sub in ("plain", "enc", "tmp"):
            for path in (self.root / sub).rglob("*"):
                if path.is_file() and path.name not in referenced and path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
        return removed


class PlainSink:
    def __init__(self, store: BlobStore):
        self._store = store
        self._path, self._file = store._tmp()
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._sha.update(data)
        self.size += len(data)

    def finish(self) -> Received:
        _close_synced(self._file)
        sha = self._sha.hexdigest()
        self._store._place(self._path, self._store.plain_path(sha))
        return Received(name=sha, size=self.size, digest=sha, sha256=sha)

    def abort(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


class EncryptedSink:
    def __init__(self, store: BlobStore, algorithm: str, data_key: bytes, chunk_size: int):
        self._store = store
        self.name = secrets.token_hex(20)
        self._path, self._file = store._tmp()
        self._algorithm = algorithm
        self._chunk_size = chunk_size
        self._prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
        self._writer = EncryptingWriter(self._file, algorithm, data_key, self.name, chunk_size, self._prefix)
        self._sha = hashlib.sha256()
        self._mac = ContentMac(data_key, algorithm)
        self.size = 0

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        self._sha.update(data)
        self._mac.update(data)
        self.size += len(data)

    def finish(self) -> Received:
        self._writer.close()
        _close_synced(self._file)
        return Received(name=self.name, size=self.size, digest=self._mac.hexdigest(), sha256=self._sha.hexdigest(),
                        algorithm=self._algorithm, chunk_size=self._chunk_size, nonce_prefix=self._prefix,
                        staged=self._path)

    def abort(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


def iter_plain(source: BinaryIO) -> Iterator[bytes]:
    """A download's body: chunk by chunk, closing the source at the end."""
    try:
        if isinstance(source, DecryptingReader):
            yield from source.chunks()
        else:
            while chunk := source.read(READ_SIZE):
                yield chunk
    finally:
        source.close()


def _close_synced(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
