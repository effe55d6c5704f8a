"""Load a set of .bpmn/.dmn files into process specs, or say exactly what is wrong with them.

Untrusted XML is parsed with entity resolution and network access off; a DOCTYPE is refused
outright, since nothing in BPMN needs one and it is the door to XXE.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from .errors import DiagramProblem, InvalidDiagram
from .validation import check_process_tree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


@dataclass(frozen=True)
class ParsedProcess:
    """An executable process from a deployment: immutable once parsed (instances refer to it)."""

    key: str
    name: str
    file: str
    spec: BpmnProcessSpec
    subprocess_specs: dict
    documentation: str = ""


@dataclass
class Bundle:
    processes: dict[str, ParsedProcess] = field(default_factory=dict)
    forms_used: set[str] = field(default_factory=set)


def parse_xml(content: bytes | str, file: str) -> etree._Element:
    """Parse one file safely; raise InvalidDiagram naming the file and line on any XML error."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    try:
        root = etree.fromstring(content, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as e:
        raise InvalidDiagram([DiagramProblem(file, None, f"not well-formed XML: {e.msg}", e.lineno)]) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InvalidDiagram([DiagramProblem(file, None, "DOCTYPE declarations are not allowed", 1)])
    return root


def _element_at_line(root: etree._Element, line: int | None) -> str | None:
    """XSD errors carry a line but no element id (SpiffWorkflow pitfall P14); recover the id."""
    if not line:
        return None
    best = None
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.sourceline == line:
            node = el
            while node is not None and node.get("id") is None:
                node = node.getparent()
            return node.get("id") if node is not None else None
        if el.sourceline and el.sourceline < line and el.get("id"):
            best = el.get("id")
    return best


def _problem_from_validation(e: ValidationException, file: str, root: etree._Element) -> DiagramProblem:
    message = e.args[0] if e.args else str(e)
    element = e.id or _element_at_line(root, e.line_number)
    if "found two items" in message and element:
        # SpiffWorkflow reports a dangling sequence flow this way; say what actually happened.
        message = f"a sequence flow from '{element}' points to an element that does not exist"
    return DiagramProblem(file, element or None, message, e.line_number or None)


def load_bundle(
    bpmn_files: Mapping[str, bytes | str],
    dmn_files: Mapping[str, bytes | str] | None = None,
    forms: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Bundle:
    """Parse and validate a deployment. `forms` / `services`, when given, are the names that exist;
    references to others are reported. Raises InvalidDiagram with every problem found."""
    problems: list[DiagramProblem] = []
    parser = SpiffBpmnParser(validator=VALIDATOR)
    trees: dict[str, etree._Element] = {}
    for file, content in (dmn_files or {}).items():
        try:
            parser.add_dmn_xml(parse_xml(content, file), filename=file)
        except InvalidDiagram as e:
            problems.extend(e.problems)
        except ValidationException as e:
            problems.append(DiagramProblem(file, e.id or None, e.args[0] if e.args else str(e), e.line_number))
        except Exception as e:  # noqa: BLE001 - the DMN parser raises assorted errors on foreign input
            problems.append(DiagramProblem(file, None, f"invalid DMN: {e}"))
    for file, content in bpmn_files.items():
        try:
            root = parse_xml(content, file)
        except InvalidDiagram as e:
            problems.extend(e.problems)
            continue
        if etree.QName(root).namespace != BPMN_NS or etree.QName(root).localname != "definitions":
            problems.append(DiagramProblem(file, None, "not a BPMN 2.0 document (root must be bpmn:definitions)", 1))
            continue
        trees[file] = root
        try:
            parser.add_bpmn_xml(root, filename=file)
        except ValidationException as e:
            problems.append(_problem_from_validation(e, file, root))
        except Exception as e:  # noqa: BLE001 - parser internals fail on some malformed input
            problems.append(DiagramProblem(file, None, f"cannot read diagram: {e}"))
    if problems:
        raise InvalidDiagram(problems)

    bundle = Bundle()
    executable = {}
    for file, root in trees.items():
        for proc in root.iter(f"{{{BPMN_NS}}}process"):
            if proc.get("isExecutable", "false").lower() == "true":
                executable[proc.get("id")] = (file, proc)
        problems.extend(check_process_tree(root, file, forms=forms, services=services, used_forms=bundle.forms_used))
    if not executable:
        problems.append(DiagramProblem(next(iter(trees), None), None, "no executable process (isExecutable=\"true\")"))
    for key, (file, proc) in executable.items():
        try:
            spec = parser.get_spec(key)
            subs = parser.get_subprocess_specs(key)
        except ValidationException as e:
            problems.append(_problem_from_validation(e, e.file_name or file, trees.get(e.file_name or file, proc)))
            continue
        except Exception as e:  # noqa: BLE001
            problems.append(DiagramProblem(file, key, f"cannot build process: {e}"))
            continue
        doc = proc.find(f"{{{BPMN_NS}}}documentation")
        bundle.processes[key] = ParsedProcess(
            key=key,
            name=proc.get("name") or key,
            file=file,
            spec=spec,
            subprocess_specs=subs,
            documentation=(doc.text or "").strip() if doc is not None else "",
        )
    if problems:
        raise InvalidDiagram(problems)
    return bundle
