"""What changed between two versions of a diagram, element by element.

Elements are matched by id (what SpiffWorkflow matches running tasks by, too). An element
changed when one of its attributes or any of its own content changed: extension elements
(performers, forms, scripts, due dates), conditions, timer and message definitions,
documentation. Shapes and positions (BPMN DI) are not behaviour and are left out.
"""
from __future__ import annotations

from lxml import etree

from engine.loader import BPMN_NS, parse_xml

# What a designer thinks of as an element of the process.
TRACKED = {
    "process", "lane", "sequenceFlow", "message", "signal", "error", "escalation",
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway",
}
# Children that restate the flows (already compared on the flows themselves) or a lane's members.
_IGNORED_CHILDREN = {"incoming", "outgoing", "flowNodeRef", "laneSet", "childLaneSet"}
# Wrappers that add nothing to what a line says ("property due", not "properties / property due").
_CONTAINERS = {"extensionElements", "properties", "parameters"}


def _local(el) -> str:
    return etree.QName(el).localname


def _elements(root) -> dict[str, etree._Element]:
    return {el.get("id"): el for el in root.iter(f"{{{BPMN_NS}}}*")
            if isinstance(el.tag, str) and el.get("id") and _local(el) in TRACKED}


def _entries(child) -> dict[str, str]:
    """A child's content as "what → value" lines a designer can read: `property due` → `"P1D"`,
    `instructionsForEndUser` → its text, `timerEventDefinition / timeDuration` → the duration.
    Namespace declarations, whitespace and the generated ids of event definitions are left out."""
    out: dict[str, str] = {}

    def put(key: str, value: str) -> None:
        n, unique = 2, key
        while unique in out:
            unique, n = f"{key} ({n})", n + 1
        out[unique] = value

    def walk(el, path: list[str]) -> None:
        label = _local(el) + (f" {el.get('name')}" if el.get("name") else "")
        here = [*path, label] if _local(el) not in _CONTAINERS else path
        key = " / ".join(here) or _local(el)
        attrs = {etree.QName(k).localname: v for k, v in el.attrib.items()
                 if etree.QName(k).localname not in ("name", "type")
                 and not (etree.QName(k).localname == "id" and etree.QName(el).namespace == BPMN_NS)}
        for name, value in sorted(attrs.items()):
            put(key if name == "value" else f"{key} @{name}", value)
        kids = [c for c in el if isinstance(c.tag, str)]
        text = (el.text or "").strip()
        if text and not kids:
            put(key, text)
        for kid in kids:
            walk(kid, here)

    walk(child, [])
    return out


def _content(el) -> dict[str, str]:
    """The element's own attributes and content, without tracked children (compared on their own)."""
    out = {f"@{k}": v for k, v in sorted(el.attrib.items()) if k != "id"}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name in _IGNORED_CHILDREN or (etree.QName(child).namespace == BPMN_NS and name in TRACKED):
            continue
        out.update(_entries(child))
    return out


def _describe(el) -> dict:
    return {"element_id": el.get("id"), "name": el.get("name") or "", "type": _local(el)}


def diff(old_xml: str, new_xml: str) -> dict:
    old = _elements(parse_xml(old_xml, "old.bpmn"))
    new = _elements(parse_xml(new_xml, "new.bpmn"))
    added = [_describe(new[i]) for i in new if i not in old]
    removed = [_describe(old[i]) for i in old if i not in new]
    changed = []
    for element_id in (i for i in new if i in old):
        before, after = _content(old[element_id]), _content(new[element_id])
        if _local(old[element_id]) != _local(new[element_id]):
            before["type"], after["type"] = _local(old[element_id]), _local(new[element_id])
        changes = [{"what": key, "old": before.get(key), "new": after.get(key)}
                   for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
        if changes:
            changed.append(dict(_describe(new[element_id]), changes=changes))
    return {"added": added, "removed": removed, "changed": changed}
