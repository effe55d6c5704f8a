"""The English a designer wrote beside a diagram's Chinese texts.

A process, a flow node or a lane may carry `spiffworkflow:property name="name_en"` (and a process
`description_en` beside its documentation, `category_en` beside its `category`); a user task `instructions_en` beside its instructions
(rendered by engine.runtime). This module reads the names, so the service can show a diagram's
words in English on request without the engine knowing about languages.
"""
from __future__ import annotations

from lxml import etree

from .validation import NS

NAME_EN = "name_en"
DESCRIPTION_EN = "description_en"
CATEGORY_EN = "category_en"


def _property(element: etree._Element, name: str) -> str:
    node = element.find(f"bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property[@name='{name}']", NS)
    return (node.get("value") or "").strip() if node is not None else ""


def english_texts(root: etree._Element) -> dict[str, str]:
    """Chinese text → the designer's English, for every named element that gives one."""
    out: dict[str, str] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = (element.get("name") or "").strip()
        if name and (english := _property(element, NAME_EN)):
            out.setdefault(name, english)
        if etree.QName(element).localname == "process":
            doc = element.find("bpmn:documentation", NS)
            if doc is not None and (doc.text or "").strip() and (english := _property(element, DESCRIPTION_EN)):
                out.setdefault(doc.text.strip(), english)
            category = _property(element, "category")
            if category and (english := _property(element, CATEGORY_EN)):
                out.setdefault(category, english)
    return out
