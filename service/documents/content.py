"""What an uploaded file is and what it says: the type is sniffed from the bytes (never from the
name or the client's Content-Type), file names are sanitised, and text is extracted for search.

Accepted: PDF (`%PDF-`), DOCX (a zip holding word/document.xml) and UTF-8 plain text.
"""
from __future__ import annotations

import codecs
import logging
import re
import unicodedata
import zipfile
from typing import BinaryIO

from lxml import etree

log = logging.getLogger(__name__)

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain; charset=utf-8"
EXTENSIONS = {PDF: (".pdf",), DOCX: (".docx",), TEXT: (".txt", ".text", ".md", ".csv", ".log")}
HEAD_SIZE = 8192
# A DOCX whose document.xml inflates beyond this is not read further (zip bombs, ASVS 5.2.3).
DOCX_XML_LIMIT = 32 * 1024 * 1024


class Sniffer:
    """Watches an upload go by: keeps its first bytes and whether all of it is UTF-8 text."""

    def __init__(self):
        self.head = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = True
        self.size = 0

    def feed(self, data: bytes) -> None:
        if len(self.head) < HEAD_SIZE:
            self.head += data[:HEAD_SIZE - len(self.head)]
        self.size += len(data)
        if self._text:
            try:
                self._text = "\x00" not in self._decoder.decode(data)
            except UnicodeDecodeError:
                self._text = False

    def content_type(self, reopen) -> str | None:
        """The type, or None if it is none of the accepted ones; `reopen()` gives the content
        (seekable) when the zip structure has to be looked at."""
        if self.size == 0:
            return None
        if self.head.startswith(b"%PDF-"):
            return PDF
        if self.head.startswith(b"PK\x03\x04"):
            with reopen() as f:
                return DOCX if _is_docx(f) else None
        if self._text:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return None
            return TEXT
        return None


def _is_docx(f: BinaryIO) -> bool:
    try:
        with zipfile.ZipFile(f) as z:
            return "word/document.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_FORBIDDEN = set('<>:"/\\|?*')


def safe_file_name(name: str | None, content_type: str) -> str:
    """A name fit for a download header and any file system: no path, no control or bidi
    characters, no reserved device name, at most 120 characters, an extension matching the
    sniffed type."""
    name = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(c for c in name if c not in _FORBIDDEN and unicodedata.category(c)[0] not in ("C",))
    name = name.strip(" .")
    if _RESERVED.match(name):
        name = "_" + name
    stem, dot, ext = name.rpartition(".")
    ext = "." + ext.lower() if dot else ""
    if ext not in EXTENSIONS[content_type]:
        # A name that lies about the type keeps what it said and gets the true extension.
        stem, ext = name, EXTENSIONS[content_type][0]
    stem = stem[:120 - len(ext)].rstrip(" .") or "document"
    return stem + ext


def extract_text(f: BinaryIO, content_type: str, max_bytes: int, max_chars: int) -> tuple[str, str | None]:
    """The text of a plain (公开/内部) file for the index, and a note when it is partial or absent."""
    if content_type == TEXT:
        # UTF-8 needs at most 4 bytes a character: read no more than the index can take.
        data = f.read(min(max_bytes, 4 * max_chars))
        text = data.decode("utf-8", errors="ignore")
        return text[:max_chars], ("truncated" if f.read(1) or len(text) > max_chars else None)
    if content_type == DOCX:
        return _docx_text(f, max_chars)
    if content_type == PDF:
        f.seek(0, 2)
        if f.tell() > max_bytes:
            return "", "too large to extract"
        f.seek(0)
        return _pdf_text(f, max_chars)
    return "", "no text"


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class _Capped:
    """At most `limit` bytes of a stream: an inflating zip member cannot grow without bound."""

    def __init__(self, raw: BinaryIO, limit: int):
        self._raw = raw
        self.left = limit

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self._raw.read(size) if size else b""
        self.left -= len(data)
        return data


def _docx_text(f: BinaryIO, max_chars: int) -> tuple[str, str | None]:
    """Paragraph by paragraph with a streaming parser (no DTD, no entities, no network), in
    constant memory, until the index has enough."""
    paragraphs, total, note = [], 0, None
    with zipfile.ZipFile(f) as z, z.open("word/document.xml") as member:
        xml = _Capped(member, DOCX_XML_LIMIT)
        try:
            for _event, p in etree.iterparse(xml, events=("end",), tag=f"{_W}p", resolve_entities=False,
                                             no_network=True, load_dtd=False, huge_tree=False):
                parts = []
                for node in p.iter(f"{_W}t", f"{_W}tab", f"{_W}br"):
                    if node.tag == f"{_W}t":
                        parts.append(node.text or "")
                    else:
                        parts.append("\t" if node.tag == f"{_W}tab" else "\n")
                p.clear()
                paragraphs.append("".join(parts))
                total += len(paragraphs[-1]) + 1
                if total >= max_chars:
                    note = "truncated"
                    break
        except etree.XMLSyntaxError as e:
            # Cut off by the cap, or malformed: index what was read before the problem.
            note = "truncated" if xml.left == 0 else f"unreadable: {e}"[:255]
    return "\n".join(paragraphs)[:max_chars], note


def _pdf_text(f: BinaryIO, max_chars: int) -> tuple[str, str | None]:
    from pypdf import PdfReader

    parts, total = [], 0
    try:
        for page in PdfReader(f).pages:
            text = page.extract_text() or ""
            parts.append(text)
            total += len(text)
            if total >= max_chars:
                return "\n".join(parts)[:max_chars], "truncated"
    except Exception as e:  # noqa: BLE001 - pypdf raises assorted errors on malformed PDFs
        # An unreadable PDF is still stored and found by its metadata; the note says why.
        log.info("PDF text extraction failed: %s", e)
        return "\n".join(parts)[:max_chars], "unreadable PDF"
    return "\n".join(parts), None
