"""Helpers for the document library tests: multipart uploads as a client sends them, a DOCX and
a PDF built in memory, clearances set through the admin API."""
from __future__ import annotations

import io
import zipfile

API = "/api/v1/documents"


def upload(api, data: bytes = b"", filename: str = "note.txt", **fields):
    form = {"title": "测试文件", "abstract": "用于测试的文件", "keywords": "测试", "security_level": "内部"}
    form.update({k: v for k, v in fields.items() if v is not None})
    form = {k: v for k, v in form.items() if v != ...}
    form["file"] = (io.BytesIO(data or "无纸化办公平台测试文本。\n".encode()), filename)
    return api.client.post(API, data=form, headers=api._headers(), content_type="multipart/form-data")


def uploaded(api, data: bytes = b"", filename: str = "note.txt", **fields) -> dict:
    r = upload(api, data, filename, **fields)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def new_version(api, document_id: int, data: bytes | None = None, filename: str = "note.txt", **fields):
    form = dict(fields)
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return api.client.post(f"{API}/{document_id}/versions", data=form, headers=api._headers(),
                           content_type="multipart/form-data")


def raw_multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "inklessboundary") -> tuple[bytes, str]:
    """A multipart body with the parts in exactly this order: (name, filename or None, bytes)."""
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def docx(paragraphs: list[str]) -> bytes:
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')
        z.writestr("word/document.xml",
                   f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {ns}><w:body>{body}'
                   "</w:body></w:document>")
    return out.getvalue()


def pdf(text: str) -> bytes:
    """A one-page PDF showing `text` (ASCII) in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def set_clearance(login, username: str, level: str) -> None:
    r = login("sysadmin").client.put(f"{API}/clearances/{username}", json={"level": level},
                                     headers=login("sysadmin")._headers())
    assert r.status_code == 200, r.get_json()
