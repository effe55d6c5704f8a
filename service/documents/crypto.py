"""Authenticated encryption of blobs in chunks, and the wrapping of data keys (R-DOC-2, R-SEC-3).

A blob is cut into chunks of `chunk_size` bytes, each sealed on its own with an AEAD cipher:
nonce = the object's random 8-byte prefix ‖ chunk number, associated data = object name ‖ chunk
number ‖ "last chunk" flag. Chunks therefore cannot be swapped, moved to another object, dropped
from the end or the file cut short without decryption failing. Memory stays at about one chunk
whatever the size of the file, and any chunk can be decrypted alone (seekable reads).

Suites: AES-256-GCM (default) and SM4-GCM (GB/T 32907 with GCM as in RFC 8998), selectable by
configuration; key derivation and content MACs use SHA-256 or SM3 to match. SM2 is not needed
here and `cryptography` does not offer it.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8


class CorruptObject(Exception):
    """A stored object failed authentication: it was altered, truncated or is not ours."""


class AesGcm:
    name = "AES-256-GCM"
    key_size = 32
    hash = hashes.SHA256

    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, data, aad)

    def open(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(nonce, data, aad)


class Sm4Gcm:
    name = "SM4-GCM"
    key_size = 16
    hash = hashes.SM3

    def __init__(self, key: bytes):
        self._key = key

    def seal(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag

    def open(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if len(data) < TAG_SIZE:
            raise InvalidTag()
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-TAG_SIZE:])).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(data[:-TAG_SIZE]) + decryptor.finalize()


def _sm4_gcm_available() -> bool:
    try:
        Sm4Gcm(bytes(16)).seal(bytes(12), b"", b"")
    except Exception:  # noqa: BLE001 - an OpenSSL without SM4 raises UnsupportedAlgorithm or worse
        return False
    return True


SUITES: dict[str, type] = {"AES-256-GCM": AesGcm}
if _sm4_gcm_available():
    SUITES["SM4-GCM"] = Sm4Gcm


def suite(name: str) -> type:
    try:
        return SUITES[name]
    except KeyError:
        raise CorruptObject(f"unknown or unavailable cipher {name}") from None


def new_data_key(algorithm: str) -> bytes:
    return os.urandom(suite(algorithm).key_size)


def _derive(secret: bytes, algorithm: str, purpose: bytes, length: int | None = None) -> bytes:
    cls = suite(algorithm)
    return HKDF(algorithm=cls.hash(), length=length or cls.key_size, salt=None,
                info=b"inkless/" + purpose).derive(secret)


def wrap_key(master: bytes, algorithm: str, data_key: bytes) -> bytes:
    """Seal a data key under a key-encryption key derived from a master key."""
    kek = _derive(master, algorithm, b"kek")
    nonce = os.urandom(12)
    return nonce + suite(algorithm)(kek).seal(nonce, data_key, b"inkless-data-key|" + algorithm.encode())


def unwrap_key(master: bytes, algorithm: str, wrapped: bytes) -> bytes:
    kek = _derive(master, algorithm, b"kek")
    try:
        return suite(algorithm)(kek).open(wrapped[:12], wrapped[12:], b"inkless-data-key|" + algorithm.encode())
    except InvalidTag:
        raise CorruptObject("a data key does not open with its master key") from None


class ContentMac:
    """Fingerprint of a confidential content, keyed per document: versions of one document can be
    compared, two documents holding the same secret cannot."""

    def __init__(self, data_key: bytes, algorithm: str):
        self._mac = hmac.HMAC(_derive(data_key, algorithm, b"content-mac", 32), suite(algorithm).hash())

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.finalize().hex()


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(name: str, index: int, last: bool) -> bytes:
    return b"inkless-blob|" + name.encode() + b"|" + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """Write plaintext, get sealed chunks on `out`; `close()` seals the last (possibly short) one."""

    def __init__(self, out: BinaryIO, algorithm: str, data_key: bytes, name: str, chunk_size: int,
                 nonce_prefix: bytes):
        self._out = out
        self._aead = suite(algorithm)(data_key)
        self._name = name
        self._chunk = chunk_size
        self._prefix = nonce_prefix
        self._buffer = bytearray()
        self._index = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        # Keep at least one byte back: only close() knows which chunk is the last.
        while len(self._buffer) > self._chunk:
            self._seal(bytes(self._buffer[:self._chunk]), last=False)
            del self._buffer[:self._chunk]

    def close(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer = bytearray()

    def _seal(self, plain: bytes, last: bool) -> None:
        self._out.write(self._aead.seal(_nonce(self._prefix, self._index), plain, _aad(self._name, self._index, last)))
        self._index += 1


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only view of an encrypted object's plaintext, one chunk in memory."""

    def __init__(self, raw: BinaryIO, algorithm: str, data_key: bytes, name: str, chunk_size: int,
                 nonce_prefix: bytes, size: int):
        super().__init__()
        self._raw = raw
        self._aead = suite(algorithm)(data_key)
        self._name = name
        self._chunk = chunk_size
        self._prefix = nonce_prefix
        self._size = size
        stored = os.fstat(raw.fileno()).st_size
        self._count = max(1, -(-stored // (chunk_size + TAG_SIZE)))
        if stored != size + self._count * TAG_SIZE:
            raise CorruptObject(f"object {name} has {stored} bytes on disk; {size} bytes of content expected")
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(index * (self._chunk + TAG_SIZE))
        sealed = self._raw.read(self._chunk + TAG_SIZE)
        last = index == self._count - 1
        try:
            plain = self._aead.open(_nonce(self._prefix, index), sealed, _aad(self._name, index, last))
        except InvalidTag:
            raise CorruptObject(f"object {self._name} fails authentication at chunk {index}") from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        index, offset = divmod(self._pos, self._chunk)
        data = self.chunk(index)[offset:offset + len(buffer)]
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def chunks(self) -> Iterator[bytes]:
        """The plaintext, chunk by chunk, from the start (for streaming a download)."""
        for index in range(self._count):
            yield self.chunk(index)
        self._cached = None

    def close(self) -> None:
        self._raw.close()
        super().close()
