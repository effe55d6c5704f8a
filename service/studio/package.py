"""A process package as one zip file: the diagram, its forms, DMN tables and test scenarios.

Layout: `model.json` (key, name, description, category, starters), `<key>.bpmn`, `forms/*.json`,
`dmn/*.dmn`, `tests/*.json` (scenarios). Importing reads names only into memory (nothing is
written to disk, so a `../` name goes nowhere) and refuses archives that would unpack to more
than the draft limit, whatever their compressed size.
"""
from __future__ import annotations

import io
import json
import lzma
import posixpath
import zipfile
import zlib

from flask_babel import gettext as _

from engine import bounds as data_bounds

from ..bounds import strict_loads
from ..errors import Invalid, problem_details
from .catalogue import MAX_DRAFT_BYTES
from .checks import diagram_file
from .models import ProcessModel

MAX_ENTRIES = 500


def export(model: ProcessModel) -> bytes:
    draft = model.draft
    buffer = io.BytesIO()
    meta = {"key": model.key, "name": model.name, "description": model.description,
            "category": model.category, "starters": model.starters}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.json", json.dumps(meta, ensure_ascii=False, indent=2))
        z.writestr(diagram_file(model), draft.xml)
        for name, text in sorted(draft.forms.items()):
            z.writestr(f"forms/{name}", text)
        for name, text in sorted(draft.dmn.items()):
            z.writestr(f"dmn/{name}", text)
        for name, scenario in sorted(draft.scenarios.items()):
            z.writestr(f"tests/{name}.json", json.dumps(scenario, ensure_ascii=False, indent=2))
    return buffer.getvalue()


def _refuse(message: str):
    raise Invalid(_("The package is invalid."), [{"field": "file", "message": message}])


# What zipfile can unpack; anything else (or an encrypted entry) is refused by name before reading.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
            zipfile.ZIP_LZMA: "lzma"}
# A damaged archive shows up as any of these while zipfile reads it (zlib, bz2 and lzma raise
# their own errors; a bad CRC or truncated member is BadZipFile or EOFError).
_DAMAGED = (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError, RuntimeError,
            NotImplementedError)


def _entries(content: bytes) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        entries = [i for i in archive.infolist() if not i.is_dir()]
    except _DAMAGED:
        _refuse(_("not a zip file"))
    if len(entries) > MAX_ENTRIES or sum(i.file_size for i in entries) > MAX_DRAFT_BYTES:
        _refuse(_("The upload is too large."))
    for info in entries:
        if info.flag_bits & 0x1:
            _refuse(_("'%(name)s' is encrypted", name=info.filename))
        if info.compress_type not in _METHODS:
            _refuse(_("'%(name)s' uses compression method %(method)s; use deflate", name=info.filename,
                      method=info.compress_type))
    return archive, entries


def _unpacked(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Reading stops at the size the directory declares (so a lying entry cannot unpack to more
    # than was counted above) and the CRC is checked at its end.
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except _DAMAGED as e:
        _refuse(_("'%(name)s' is damaged: %(error)s", name=info.filename, error=str(e) or type(e).__name__))
    if len(data) > info.file_size:
        _refuse(_("'%(name)s' is larger than the archive says", name=info.filename))
    return data


def read(content: bytes) -> dict:
    """The draft contents of a package: {"meta", "xml", "forms", "dmn", "scenarios"}."""
    archive, entries = _entries(content)
    out = {"meta": {}, "xml": None, "forms": {}, "dmn": {}, "scenarios": {}}
    for info in entries:
        folder, name = posixpath.split(info.filename.replace("\\", "/").lstrip("/"))
        if not name or name.startswith("."):
            continue
        try:
            text = _unpacked(archive, info).decode("utf-8-sig")
        except UnicodeDecodeError:
            _refuse(_("'%(name)s' is not UTF-8 text", name=info.filename))
        if "\x00" in text:
            _refuse(_("'%(name)s' is not a text file (it holds NUL characters)", name=info.filename))
        lower = name.lower()
        if folder == "" and name == "model.json":
            out["meta"] = _json(info.filename, text)
        elif lower.endswith((".bpmn", ".bpmn20.xml")) and folder == "":
            if out["xml"] is not None:
                _refuse(_("the package holds more than one diagram"))
            out["xml"] = text
        elif lower.endswith(".dmn"):
            out["dmn"][name] = text
        elif folder.endswith("tests") and lower.endswith(".json"):
            out["scenarios"][name[:-5]] = _json(info.filename, text)
        elif lower.endswith(".json"):
            out["forms"][name] = text
    if out["xml"] is None:
        _refuse(_("the package holds no .bpmn diagram"))
    return out


def _json(name: str, text: str) -> dict:
    try:
        value = strict_loads(text)
    except (json.JSONDecodeError, ValueError) as e:
        line = getattr(e, "lineno", "?")
        _refuse(_("'%(name)s' is not valid JSON (line %(line)s): %(error)s", name=name, line=line,
                  error=getattr(e, "msg", str(e))))
    except RecursionError:
        _refuse(_("'%(name)s' is nested too deeply", name=name))
    if not isinstance(value, dict):
        _refuse(_("'%(name)s' must hold a JSON object", name=name))
    found = data_bounds.problem(value)
    if found is not None:
        (detail,) = problem_details(found)
        _refuse(f"{name}: {detail['field']}: {detail['message']}")
    return value
