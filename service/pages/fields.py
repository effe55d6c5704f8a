"""Task forms in HTML: a JSON Schema (+ UI schema) becomes the fields a page renders, and a submitted
HTML form becomes the JSON data the schema validates.

The conventions follow react-jsonschema-form, which designers already know: `title` is the label,
`description` and `ui:help` the help text, `oneOf` of `const`/`title` (or `enum`) the choices,
`ui:widget` picks textarea / radio / checkboxes / select, `ui:order` the order (`*` for the rest),
`readOnly` or `ui:readonly` shows a value without letting it be edited. Field names in HTML are
the dotted paths the validator reports (`members.0.name`), so an error lands next to its field.
Document fields (`"format": "document"` on an integer, `"format": "documents"` on an array of
integers; service/documents/attachments.py) become a picker of the documents the user may read.
The platform's own formats (service/field_formats.py) become a list of departments or groups by
name, a person field searching people by name, and native date, date-and-time and duration
pickers; a date and time is sent back as ISO 8601 with the platform's offset (+08:00).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import g
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from .. import db, field_formats, localtime
from ..documents import attachments

MAX_ROWS = 50  # repeating sections: more rows than this in one submission are ignored


@dataclass
class Field:
    name: str
    label: str
    widget: str  # text | email | tel | textarea | number | date | datetime-local | duration | person
    #              | select | radio | checkboxes | multiselect | checkbox | readonly | rows | documents
    value: Any = None
    required: bool = False
    help: list[str] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rows: list[list[Field]] = field(default_factory=list)  # repeating sections: one list of fields per row
    template: list[Field] = field(default_factory=list)  # an empty row, for adding one in the browser
    fmt: str | None = None  # a platform format (service/field_formats.py): values are shown by name

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")

    @property
    def display(self) -> str:
        """The value as a reader sees it (choice titles instead of codes)."""
        return display_value(self.value, Label(self.label, dict(self.options), fmt=self.fmt))

    def selected(self, option: str) -> bool:
        if isinstance(self.value, list):
            return option in [str(v) for v in self.value]
        return self.value is not None and str(self.value) == option


def choices(node: dict) -> list[tuple[str, str]]:
    """The (value, title) pairs of a choice schema: `oneOf`/`anyOf` of `const` + `title`, or `enum`."""
    options = node.get("oneOf") or node.get("anyOf")
    if options and all(isinstance(o, dict) and "const" in o for o in options):
        return [(str(o["const"]), str(o.get("title", o["const"]))) for o in options]
    if "enum" in node:
        titles = node.get("enumNames") or []
        return [(str(v), str(titles[i]) if i < len(titles) else str(v)) for i, v in enumerate(node["enum"])]
    return []


def display_value(value: Any, label: Label | None = None) -> str:
    """A value as a reader sees it: choice titles instead of codes, one line per repeated row."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        if any(isinstance(v, dict) for v in value):
            return "\n".join(display_value(v, label) for v in value)
        return ("、" if str(get_locale()) == "zh" else ", ").join(display_value(v, label) for v in value)
    if isinstance(value, dict):
        parts = label.parts if label else {}
        return "; ".join(f"{parts[k].title if k in parts else k}: {display_value(v, parts.get(k))}"
                         for k, v in value.items() if v not in (None, ""))
    if label and label.fmt:
        shown = field_formats.display(label.fmt, value)
        if shown is not None:
            return shown
    return label.choices.get(str(value), str(value)) if label else str(value)


def _ordered(properties: dict, ui: dict) -> list[str]:
    order = ui.get("ui:order")
    names = list(properties)
    if not order:
        return names
    rest = [n for n in names if n not in order]
    out: list[str] = []
    for name in order:
        if name == "*":
            out.extend(rest)
        elif name in properties:
            out.append(name)
    if "*" not in order:
        out.extend(rest)
    return out


def _is_object_array(node: dict) -> bool:
    items = node.get("items")
    return node.get("type") == "array" and isinstance(items, dict) and items.get("type") == "object"


def build(schema: dict, ui: dict | None, values: dict, errors: dict[str, str], prefix: str = "") -> list[Field]:
    """The fields of an object schema, in UI order, filled with `values` and their `errors`."""
    ui = ui or {}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    out = []
    for name in _ordered(properties, ui):
        node = properties[name]
        if not isinstance(node, dict) or ui.get(name, {}).get("ui:widget") == "hidden":
            continue
        out.append(_field(prefix + name, node, ui.get(name) or {}, name in required,
                          values.get(name, node.get("default")), errors))
    return out


def _field(name: str, node: dict, ui: dict, required: bool, value: Any, errors: dict[str, str]) -> Field:
    f = Field(name=name, label=str(node.get("title") or name), widget="text", value=value,
              required=required, error=errors.get(name))
    f.help = [h for h in dict.fromkeys([node.get("description"), ui.get("ui:help")]) if h]
    options = ui.get("ui:options") or {}
    widget = ui.get("ui:widget")
    kind = node.get("type")
    documents = attachments.kind(node)
    if documents:
        f.widget = "documents"
        f.value = attachments.ids(value)
        f.attrs.update(many=documents == attachments.MANY, readonly=bool(node.get("readOnly") or ui.get("ui:readonly")))
        return f
    f.fmt = _format(node)
    if node.get("readOnly") or ui.get("ui:readonly"):
        f.widget = "readonly"
        f.options = choices(node.get("items", {}) if kind == "array" else node)
        return f
    if _is_object_array(node):
        f.widget = "rows"
        items = node["items"]
        item_ui = ui.get("items") or {}
        present = value if isinstance(value, list) else []
        # Without script a person can still fill one row: an empty one is shown when there is none.
        f.rows = [build(items, item_ui, row if isinstance(row, dict) else {}, errors, f"{name}.{i}.")
                  for i, row in enumerate(present[:MAX_ROWS] or [{}])]
        f.template = build(items, item_ui, {}, {}, f"{name}.__index__.")
        return f
    if kind == "array":
        f.options = choices(node.get("items") or {})
        item_fmt = _format(node.get("items") or {})
        if not f.options and item_fmt in field_formats.NAMED:  # a list of people, departments, groups
            f.options = field_formats.choices(db.session(), item_fmt)
        f.widget = "multiselect" if widget == "select" else "checkboxes"
        if not isinstance(value, list):
            f.value = [] if value in (None, "") else [value]
        return f
    if kind == "boolean":
        f.widget = "checkbox"
        return f
    f.options = choices(node)
    if not f.options and f.fmt in ("department", "group"):
        f.options = field_formats.choices(db.session(), f.fmt)
        if f.fmt == "department" and value in (None, "") and getattr(g, "user", None) is not None:
            f.value = g.user.department.code  # most people report for their own department
        f.widget = "radio" if widget == "radio" else "select"
        return f
    if f.options:
        f.widget = "radio" if widget == "radio" or (widget is None and len(f.options) <= 3) else "select"
        return f
    if f.fmt == "user":
        f.widget = "person"
        f.options = [(username, _("%(name)s (%(department)s)", name=name, department=department) if department else name)
                     for username, name, department in field_formats.people(db.session())]
        f.attrs["shown"] = field_formats.name_of("user", value) if isinstance(value, str) else ""
        return f
    if f.fmt == "date-time":
        f.widget = "datetime-local"
        f.value = localtime.to_picker(value) if value not in (None, "") else None
        return f
    if f.fmt == "duration":
        f.widget = "duration"
        f.attrs["amount"], f.attrs["unit"] = _duration_parts(value)
        f.options = [("M", _("minutes")), ("H", _("hours")), ("D", _("days"))]
        return f
    if kind in ("integer", "number"):
        f.widget = "number"
        f.attrs["step"] = "1" if kind == "integer" else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if key in node:
                f.attrs[attr] = node[key]
        return f
    fmt = node.get("format")
    if widget == "textarea":
        f.widget = "textarea"
        f.attrs["rows"] = options.get("rows", 4)
    elif fmt == "date" and kind == "string":
        f.widget = "date"
    elif fmt == "email" or options.get("inputType") == "email":
        f.widget = "email"
    elif options.get("inputType") == "tel":
        f.widget = "tel"
    if "maxLength" in node:
        f.attrs["maxlength"] = node["maxLength"]
    if ui.get("ui:autofocus"):
        f.attrs["autofocus"] = True
    return f


def parse(schema: dict, form: MultiDict, prefix: str = "") -> dict[str, Any]:
    """Submitted HTML form fields → JSON data for the schema.

    An empty input is left out (so `required` reports it); a number that does not parse is kept as
    the text typed, so the validator names the field and the page shows the input again.
    Read-only fields are never taken from the browser.
    """
    data: dict[str, Any] = {}
    for name, node in (schema.get("properties") or {}).items():
        if not isinstance(node, dict) or node.get("readOnly"):
            continue
        key = prefix + name
        kind = node.get("type")
        if _is_object_array(node):
            rows = []
            for index in _row_indexes(form, key):
                row = parse(node["items"], form, f"{key}.{index}.")
                if any(v not in (None, "", [], False) for v in row.values()):
                    rows.append(row)
            if rows or key + ".present" in form:
                data[name] = rows
        elif kind == "array":
            picked = [v for v in form.getlist(key) if v != ""]
            item_kind = (node.get("items") or {}).get("type")
            if picked or key + ".present" in form:
                data[name] = [_scalar(v, item_kind) for v in picked]
        elif kind == "boolean":
            if key + ".present" in form or key in form:
                data[name] = form.get(key) in ("on", "true", "1", "yes")
        elif _format(node) == "duration":
            amount, unit = (form.get(key) or "").strip(), form.get(key + ".unit") or "H"
            if amount:
                data[name] = _duration(amount, unit)
        else:
            raw = form.get(key)
            if raw is None:
                continue
            if kind not in ("integer", "number"):
                raw = raw.replace("\r\n", "\n")
            if raw.strip() == "":
                continue
            data[name] = _scalar(raw, kind)
            if _format(node) == "date-time":
                data[name] = localtime.from_picker(data[name])
    return data


def _format(node: dict) -> str | None:
    fmt = node.get("format")
    return fmt if node.get("type") == "string" and fmt in field_formats.FORMATS else None


def _duration_parts(value: Any) -> tuple[str, str]:
    """A stored duration as the picker's amount and unit: `PT8H` → 8 hours, `P3D` → 3 days."""
    if not isinstance(value, str) or not value:
        return "", "H"
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", value)
    if not match or not any(match.groups()):
        return value, "H"
    days, hours, minutes = (int(part or 0) for part in match.groups())
    if not hours and not minutes:
        return str(days), "D"
    if not minutes:
        return str(days * 24 + hours), "H"
    return str((days * 24 + hours) * 60 + minutes), "M"


def _duration(amount: str, unit: str) -> str:
    """The picker's amount and unit as ISO 8601 (`8`, hours → `PT8H`); a bad amount is kept as
    typed, so the validator names the field."""
    if not amount.isdigit() or unit not in ("M", "H", "D"):
        return amount
    return f"P{int(amount)}D" if unit == "D" else f"PT{int(amount)}{unit}"


def _row_indexes(form: MultiDict, key: str) -> list[int]:
    start = key + "."
    indexes = set()
    for name in form:
        if name.startswith(start):
            head = name[len(start):].split(".", 1)[0]
            if head.isdigit() and int(head) < MAX_ROWS:
                indexes.add(int(head))
    return sorted(indexes)


def _scalar(raw: str, kind: str | None) -> Any:
    text = raw.strip()
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return raw
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return raw
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return raw.strip() if kind == "string" else raw


@dataclass
class Label:
    """How a form names a field and its values, to show submitted data the way it was filled in."""

    title: str
    choices: dict[str, str] = field(default_factory=dict)
    parts: dict[str, Label] = field(default_factory=dict)  # arrays of objects: the item's fields
    documents: bool = False  # a document field: its ids are shown as links, resolved per reader
    fmt: str | None = None  # a platform format: shown by name or formatted (service/field_formats.py)


@dataclass
class DocumentIds:
    """Documents in submitted data; the page resolves them for its reader (title or withheld)."""

    ids: list[int]


def _label(name: str, node: dict) -> Label:
    target = node.get("items", {}) if node.get("type") == "array" else node
    if not isinstance(target, dict):
        target = {}
    parts = {k: _label(k, v) for k, v in (target.get("properties") or {}).items() if isinstance(v, dict)}
    return Label(str(node.get("title") or name), dict(choices(target)), parts, attachments.kind(node) is not None,
                 _format(target))


def labels(schemas: list[dict]) -> dict[str, Label]:
    """Field name → Label, from every form of a deployment (the first form naming a field wins)."""
    out: dict[str, Label] = {}
    for schema in schemas:
        for name, node in (schema.get("properties") or {}).items():
            if isinstance(node, dict) and name not in out and "title" in node:
                out[name] = _label(name, node)
    return out


def describe(data: dict, known: dict[str, Label], skip: set[str] = frozenset()) -> list[tuple[str, str | DocumentIds]]:
    """(label, value) pairs for the fields of `data` that a form names, in the order forms list them."""
    return [(label.title, DocumentIds(attachments.ids(data[name])) if label.documents
             else display_value(data[name], label))
            for name, label in known.items() if name in data and name not in skip]
