"""A process package as one zip file: the diagram, its forms, DMN tables and test scenarios.

Layout: `model.json` (key, name, description, category, starters), `<key>.bpmn`, `forms/*.json`,
`dmn/*.dmn`, `tests/*.json` (scenarios). Importing reads names only into memory (nothing is
written to disk, so a `../` name goes nowhere) and refuses archives that would unpack to more
than the draft limit, whatever their compressed size.
"""
from __future__ import annotations

import io
import json
import posixpath
import zipfile

from flask_babel import gettext as _

from ..errors import Invalid
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


def read(content: bytes) -> dict:
    """The draft contents of a package: {"meta", "xml", "forms", "dmn", "scenarios"}."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        _refuse(_("not a zip file"))
    entries = [i for i in archive.infolist() if not i.is_dir()]
    if len(entries) > MAX_ENTRIES or sum(i.file_size for i in entries) > MAX_DRAFT_BYTES:
        _refuse(_("The upload is too large."))
    out = {"meta": {}, "xml": None, "forms": {}, "dmn": {}, "scenarios": {}}
    for info in entries:
        folder, name = posixpath.split(info.filename.replace("\\", "/").lstrip("/"))
        if not name or name.startswith("."):
            continue
        try:
            text = archive.read(info).decode("utf-8-sig")
        except UnicodeDecodeError:
            _refuse(_("'%(name)s' is not UTF-8 text", name=info.filename))
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
        value = json.loads(text)
    except json.JSONDecodeError as e:
        _refuse(_("'%(name)s' is not valid JSON (line %(line)s): %(error)s", name=name, line=e.lineno, error=e.msg))
    if not isinstance(value, dict):
        _refuse(_("'%(name)s' must hold a JSON object", name=name))
    return value
