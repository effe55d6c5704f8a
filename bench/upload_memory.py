"""Peak memory of a streamed 1 GiB upload into the document library, against a real `inkless serve`.

    python bench/upload_memory.py                 # 1 GiB, levels 内部 (plain) and 秘密 (AES-256-GCM)
    python bench/upload_memory.py --mib 256 --level 秘密 --cipher SM4-GCM
    python bench/upload_memory.py --via page      # the upload page (/documents/upload) instead of the API

Set-up through the product's own commands in a fresh INKLESS_DATA_DIR (SQLite): `inkless init`,
`inkless department create`, `inkless user create` (an uploader and a system administrator, who
grants the uploader 秘密 through the API), then `inkless serve` on a free port of 127.0.0.1.

The client generates the file on the fly (UTF-8 text lines, 1 MiB at a time; nothing is held or
written on the client side) and sends it with http.client as one multipart/form-data POST
/api/v1/documents with a Content-Length. Before each upload the server's peak-RSS mark is reset
(`/proc/<pid>/clear_refs` ← 5) after a small warm-up upload (so jieba's dictionary and the
crypto backend are loaded); after it, VmHWM is the peak resident set during the upload. RSS is
also sampled every 20 ms as a cross-check. The server is stopped and the data directory removed
on exit.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MIB = 1024 * 1024
USER, ADMIN, PASSWORD = "bench_uploader", "bench_admin", "bench-password-9d2e"
BOUNDARY = "inklessbenchboundary7f3a"


def inkless(data_dir: Path, *args: str, env: dict) -> None:
    script = Path(sys.executable).parent / "inkless"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
    subprocess.run(cmd + list(args), check=True, env=env, cwd=data_dir, stdout=subprocess.DEVNULL, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None, token: str | None = None,
            content_type: str = "application/json") -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data) if data else {}


def token(port: int, username: str) -> str:
    body = json.dumps({"username": username, "password": PASSWORD}).encode()
    return request(port, "POST", "/api/v1/auth/token", body)["access_token"]


class PageSession:
    """A signed-in browser: its session cookie and the CSRF token the upload form's action carries."""

    def __init__(self, port: int, username: str):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/signin")
        response = conn.getresponse()
        page = response.read().decode()
        cookie = response.getheader("Set-Cookie").split(";", 1)[0]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = f"username={username}&password={PASSWORD}&csrf_token={csrf}"
        conn.request("POST", "/signin", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        response = conn.getresponse()
        response.read()
        self.cookie = (response.getheader("Set-Cookie") or cookie).split(";", 1)[0]
        conn.request("GET", "/documents/upload", headers={"Cookie": self.cookie})
        page = conn.getresponse().read().decode()
        conn.close()
        found = re.search(r'action="(/documents/upload\?csrf_token=[^"]+)"', page)
        if found is None:
            raise RuntimeError(f"no upload form after signing in: {page[:500]}")
        self.action = found.group(1)


def line_chunks(total: int):
    """`total` bytes of UTF-8 text, 1 MiB at a time, made on the fly: each piece is a numbered
    header line and a page of whole lines, so every piece is valid UTF-8 on its own."""
    line = "青海无纸化平台上传测试数据,按块流式写入,服务器不在内存中保留整个文件。第{:06d}行\n"
    header = "第{:09d}块\n"
    page = bytearray()
    n = 0
    room = MIB - len(header.format(0).encode())
    while len(page) + len(line.format(n).encode()) <= room:
        page += line.format(n).encode()
        n += 1
    page = bytes(page) + b"\n" * (room - len(page))
    sent, number = 0, 0
    while sent < total:
        chunk = header.format(number).encode() + page
        take = min(MIB, total - sent)
        if take < MIB:  # the last piece ends on a whole line, padded with newlines
            cut = chunk.rindex(b"\n", 0, take) + 1
            chunk = chunk[:cut] + b"\n" * (take - cut)
        sent += take
        number += 1
        yield chunk


def multipart_head(level: str, title: str) -> bytes:
    fields = {"title": title, "abstract": "1 GiB 流式上传内存测试", "keywords": "基准测试", "security_level": level}
    head = b""
    for name, value in fields.items():
        head += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    head += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.txt\"\r\n"
             "Content-Type: text/plain\r\n\r\n").encode()
    return head


def upload(port: int, auth: str | PageSession, size: int, level: str) -> tuple[float, dict]:
    head, tail = multipart_head(level, f"基准 {size // MIB} MiB {level}"), f"\r\n--{BOUNDARY}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    page = isinstance(auth, PageSession)
    conn.putrequest("POST", auth.action if page else "/api/v1/documents")
    if page:
        conn.putheader("Cookie", auth.cookie)
    else:
        conn.putheader("Authorization", f"Bearer {auth}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    started = time.perf_counter()
    conn.send(head)
    for chunk in line_chunks(size):
        conn.send(chunk)
    conn.send(tail)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != (303 if page else 201):
        raise RuntimeError(f"upload: {response.status} {body[:300]!r}")
    # The page answers with a redirect to the document; what the API reports is known from the level.
    return elapsed, {"encrypted": level in ("秘密", "机密")} if page else json.loads(body)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            time.sleep(0.02)


def measure(port: int, pid: int, auth: str, size: int, level: str) -> dict:
    upload(port, auth, 2 * MIB, level)  # warm-up: dictionary, ciphers, code paths
    baseline = status_kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    sampler = Sampler(pid)
    sampler.start()
    elapsed, document = upload(port, auth, size, level)
    sampler.stop.set()
    sampler.join()
    peak = status_kib(pid, "VmHWM")
    return {"level": level, "bytes": size, "encrypted": document["encrypted"], "seconds": round(elapsed, 1),
            "mib_per_s": round(size / MIB / elapsed, 1), "rss_before_mib": round(baseline / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1), "sampled_peak_mib": round(sampler.peak / 1024, 1),
            "growth_mib": round((peak - baseline) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--level", action="append", choices=["公开", "内部", "秘密", "机密"])
    parser.add_argument("--cipher", default="AES-256-GCM", choices=["AES-256-GCM", "SM4-GCM"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--via", default="api", choices=["api", "page"], help="upload through the API or the page")
    args = parser.parse_args()
    levels = args.level or ["内部", "秘密"]

    data_dir = Path(tempfile.mkdtemp(prefix="inkless-upload-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(INKLESS_DATA_DIR=str(data_dir), INKLESS_INSECURE_COOKIES="1", INKLESS_NO_SCHEDULER="1",
               INKLESS_DOCUMENT_CIPHER=args.cipher, INKLESS_DOCUMENT_MAX_BYTES=str(args.mib * MIB + 64 * MIB))
    server = None
    try:
        inkless(data_dir, "init", env=env)
        inkless(data_dir, "department", "create", "BENCH", "--name", "基准测试部", env=env)
        inkless(data_dir, "user", "create", "--username", USER, "--password", PASSWORD, "--department", "BENCH",
                env=env)
        inkless(data_dir, "user", "create", "--username", ADMIN, "--password", PASSWORD, "--department", "BENCH",
                "--role", "system_admin", env=env)
        port = free_port()
        script = Path(sys.executable).parent / "inkless"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
        server = subprocess.Popen(cmd + ["serve", "--port", str(port)], env=env, cwd=data_dir,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                request(port, "GET", "/healthz")
                break
            except (ConnectionError, OSError):
                time.sleep(0.1)
        admin = token(port, ADMIN)
        request(port, "PUT", f"/api/v1/documents/clearances/{USER}", json.dumps({"level": "机密"}).encode(), admin)
        uploader = token(port, USER) if args.via == "api" else PageSession(port, USER)
        results = [measure(port, server.pid, uploader, args.mib * MIB, level) for level in levels]
        results = [dict(r, cipher=args.cipher if r["encrypted"] else "none", via=args.via) for r in results]
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
        if args.json:
            args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
