"""Ways to take the platform's footing away in a test and give it back: a TCP proxy in front of
PostgreSQL that can be cut (the real server keeps running for everyone else), a SQLite file that
cannot be opened, and a directory mounted read-only (root ignores chmod, so a bind mount it is)."""
from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path


class CuttableProxy:
    """127.0.0.1:<port> → target. While cut, every connection (open or new) is closed at once, as
    a server that went away would; restore() lets them through again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def restore(self):
        self.up = True

    def close(self):
        self.stopped = True
        self.cut()
        self.listener.close()


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount (root with CAP_SYS_ADMIN, as on the project's test machine):
    tried for real on a scratch directory."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    scratch = Path(tempfile.mkdtemp(prefix="inkless-mount-probe-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scratch)], capture_output=True)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(scratch)], check=True)
        return True
    finally:
        scratch.rmdir()


@contextmanager
def mounted_read_only(directory: Path):
    """`directory` on a read-only bind mount of itself; `writable()` flips it back, as an operator
    fixing the mount would, without closing the files the app holds open."""
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)

    def writable():
        subprocess.run(["mount", "-o", "remount,bind,rw", str(directory)], check=True)

    try:
        yield writable
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@contextmanager
def small_filesystem(directory: Path, size: str = "4m"):
    """A tmpfs of `size` at `directory` (made empty): a disk that can really fill up."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> Path:
    """Write a file into `directory` until its file system has no byte left; returns the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
