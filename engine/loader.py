"""Load a set of .bpmn/.dmn files into process specs, or say exactly what is wrong with them.

Untrusted XML is parsed with entity resolution and network access off; a DOCTYPE is refused
outright, since nothing in BPMN needs one and it is the door to XXE and entity expansion.
"""
from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from .errors import N_, DiagramProblem, InvalidDiagram
from .validation import SPIFF, check_process_tree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)
# Only used to find *where* a refused or broken document went wrong; its tree is never used
# otherwise. Same protections (libxml2 also caps entity amplification), but it keeps going.
_LOCATING_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, recover=True
)
# What can stand before the root element besides a DOCTYPE: whitespace, the XML declaration or
# another processing instruction, comments.
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.S)
_PROLOG_DOCTYPE = re.compile(rb"\s*<!DOCTYPE")
# A run of adjacent references is one match, named by its first one that is not predefined
# (&amp; and the like are plain XML): one step per run rather than per reference.
_MARKUP = re.compile(r"<!--|<!\[CDATA\[|<!DOCTYPE"
                     r"|&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z_:][\w.:-]*);(?:&[A-Za-z_:][\w.:-]*;)*")
_SECTION_END = {"<!--": "-->", "<![CDATA[": "]]>"}
_SUBSET_END = re.compile(r"\]\s*>")
_XSD_ID = re.compile(r"'([^']*)' is not a valid value of the atomic type 'xs:ID'")


@dataclass(frozen=True)
class ParsedProcess:
    """An executable process from a deployment: immutable once parsed (instances refer to it)."""

    key: str
    name: str
    file: str
    spec: BpmnProcessSpec
    subprocess_specs: dict
    documentation: str = ""
    category: str = ""  # the process's `category` property: where the start page lists it


@dataclass
class Bundle:
    processes: dict[str, ParsedProcess] = field(default_factory=dict)
    forms_used: set[str] = field(default_factory=set)


def _locating_tree(content: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(content, parser=_LOCATING_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None


def _has_dtd(root: etree._Element | None) -> bool:
    if root is None:
        return False
    info = root.getroottree().docinfo
    return bool(info.doctype) or info.internalDTD is not None


def _prolog_declares_doctype(content: bytes) -> bool:
    """Whether the prolog holds a DOCTYPE: a look at the bytes before the root element, so a hostile
    file is refused before it is parsed. The parsed tree's docinfo stays the authority (this sees
    only ASCII-compatible encodings)."""
    pos = len(codecs.BOM_UTF8) if content.startswith(codecs.BOM_UTF8) else 0
    while (item := _PROLOG_ITEM.match(content, pos)) is not None:
        pos = item.end()
    return _PROLOG_DOCTYPE.match(content, pos) is not None


def _entity_uses(text: str) -> Iterator[tuple[int, str]]:
    """(line, name) of the entity references outside comments, CDATA sections and the DOCTYPE's
    own declarations, in one pass: each search starts where the last one ended."""
    pos = counted = 0
    line = 1
    while (match := _MARKUP.search(text, pos)) is not None:
        if match.group(1) is not None:
            line += text.count("\n", counted, match.start())
            counted = match.start()
            yield line, match.group(1)
            pos = match.end()
            continue
        pos = _end_of_section(text, match.group(0), match.end())
        if pos < 0:
            return  # unterminated: the rest of the file is inside it


def _end_of_section(text: str, opening: str, pos: int) -> int:
    if opening == "<!DOCTYPE":
        close = text.find(">", pos)
        subset = text.find("[", pos, close if close >= 0 else len(text))
        if subset < 0:
            return close + 1 if close >= 0 else -1
        end = _SUBSET_END.search(text, subset)
        return end.end() if end else -1
    closing = _SECTION_END[opening]
    end = text.find(closing, pos)
    return end + len(closing) if end >= 0 else -1


class _ElementLines:
    """Which element a source line belongs to, answered for many lines after one walk of the tree.

    For a line where an element starts: the nearest element with an id, itself or an ancestor;
    otherwise the last element with an id that starts before the line."""

    def __init__(self, root: etree._Element | None):
        self._starting: dict[int, str | None] = {}
        self._lines: list[int] = []
        self._ids: list[str] = []
        if root is None:
            return
        enclosing: list[str | None] = []
        for event, el in etree.iterwalk(root, events=("start", "end")):
            if event == "end":
                enclosing.pop()
                continue
            own = el.get("id") if isinstance(el.tag, str) else None
            enclosing.append(own or (enclosing[-1] if enclosing else None))
            line = el.sourceline
            if not isinstance(el.tag, str) or not line:
                continue
            if line not in self._starting:
                self._starting[line] = enclosing[-1] or self._before(line)
            if own:
                self._lines.append(line)
                self._ids.append(own)

    def _before(self, line: int) -> str | None:
        at = bisect.bisect_left(self._lines, line)
        return self._ids[at - 1] if at else None

    def at(self, line: int | None) -> str | None:
        if not line:
            return None
        return self._starting[line] if line in self._starting else self._before(line)


def _doctype_problems(content: bytes, file: str, root: etree._Element | None) -> list[DiagramProblem]:
    """One problem per element that uses an entity, or one for the file when none is used.

    Linear in the size of the file: a hostile one may hold millions of references."""
    encoding = (root.getroottree().docinfo.encoding if root is not None else None) or "utf-8"
    try:
        text = content.decode(encoding, errors="replace")
    except LookupError:
        text = content.decode("utf-8", errors="replace")
    lines = _ElementLines(root)
    problems: list[DiagramProblem] = []
    seen: set[str | None] = set()
    for line, name in _entity_uses(text):
        element = lines.at(line)
        if element in seen:
            continue
        seen.add(element)
        problems.append(DiagramProblem.of(
            file, element, N_("uses the XML entity '&%(entity)s;': DOCTYPE and entity declarations are not allowed"),
            line=line, entity=name))
        if len(problems) >= 20:
            break  # enough to find them
    if not problems:
        doctype = text.find("<!DOCTYPE")
        line = text.count("\n", 0, doctype) + 1 if doctype >= 0 else 1
        problems.append(DiagramProblem.of(file, None, N_("DOCTYPE declarations are not allowed"), line=line))
    return problems


def parse_xml(content: bytes | str, file: str) -> etree._Element:
    """Parse one file safely; raise InvalidDiagram naming the file, line (and element, when one
    can be found) on any XML error or DOCTYPE."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    if _prolog_declares_doctype(content):
        raise InvalidDiagram(_doctype_problems(content, file, _locating_tree(content)))
    try:
        root = etree.fromstring(content, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as e:
        located = _locating_tree(content)
        if _has_dtd(located):
            # An external entity fails to parse ("Attribute references external entity"): the
            # real problem is the DOCTYPE, so say that, at the place the entity is used.
            raise InvalidDiagram(_doctype_problems(content, file, located)) from None
        element = _element_at_line(located, e.lineno) if located is not None else None
        raise InvalidDiagram([DiagramProblem.of(file, element, N_("not well-formed XML: %(error)s"),
                                                line=e.lineno, error=e.msg)]) from None
    except ValueError as e:  # e.g. a str with an encoding declaration, or NUL bytes
        raise InvalidDiagram([DiagramProblem.of(file, None, N_("not well-formed XML: %(error)s"), line=1,
                                                error=str(e))]) from None
    if _has_dtd(root):
        raise InvalidDiagram(_doctype_problems(content, file, root))
    return root


def _element_at_line(root: etree._Element | None, line: int | None) -> str | None:
    """XSD errors carry a line but no element id (SpiffWorkflow pitfall P14); recover the id."""
    return _ElementLines(root).at(line) if line and root is not None else None


def _readable(message: str) -> str:
    """XSD messages spell namespaces out in full; write them the way the diagram does."""
    return message.replace(f"{{{BPMN_NS}}}", "bpmn:").replace(f"{{{SPIFF}}}", "spiffworkflow:")


def _problem_from_validation(e: ValidationException, file: str, root: etree._Element | None) -> DiagramProblem:
    message = _readable(e.args[0] if e.args else str(e))
    element = e.id or _element_at_line(root, e.line_number)
    if message.startswith("RecursionError"):
        # SpiffWorkflow builds a process by recursing along its flows, a few frames per step; a
        # called process is built on its own, so splitting the chain is the way out.
        return DiagramProblem.of(file, element, N_("too many steps follow one another for the engine to build the "
                                                   "process: move part of the chain into a call activity"),
                                 line=e.line_number or None)
    if "found two items" in message and element:
        # SpiffWorkflow reports a dangling sequence flow this way; say what actually happened.
        message = f"a sequence flow from '{element}' points to an element that does not exist"
    elif (match := _XSD_ID.search(message)) and root is not None:
        # The XSD says "not a valid xs:ID" both for a malformed id and for a repeated one.
        value = match.group(1)
        same = [el for el in root.iter() if isinstance(el.tag, str) and el.get("id") == value]
        if len(same) > 1:
            return DiagramProblem.of(file, value, N_("id '%(id)s' is used by %(count)s elements; ids must be unique"),
                                     line=e.line_number or None, id=value, count=len(same))
    return DiagramProblem(file, element or None, message, e.line_number or None)


def _add_dmn(parser: SpiffBpmnParser, dmn_files: Mapping[str, bytes | str]) -> list[DiagramProblem]:
    problems: list[DiagramProblem] = []
    for file, content in dmn_files.items():
        try:
            parser.add_dmn_xml(parse_xml(content, file), filename=file)
        except InvalidDiagram as e:
            problems.extend(e.problems)
        except ValidationException as e:
            problems.append(DiagramProblem(file, e.id or None, e.args[0] if e.args else str(e), e.line_number or None))
        except Exception as e:  # noqa: BLE001 - the DMN parser raises assorted errors on foreign input
            problems.append(DiagramProblem.of(file, None, N_("invalid DMN: %(error)s"), error=str(e)))
    return problems


def dmn_problems(dmn_files: Mapping[str, bytes | str]) -> list[DiagramProblem]:
    """What is wrong with decision tables on their own (a studio draft saves them one by one)."""
    return _deduplicated(_add_dmn(SpiffBpmnParser(validator=VALIDATOR), dmn_files))


def load_bundle(
    bpmn_files: Mapping[str, bytes | str],
    dmn_files: Mapping[str, bytes | str] | None = None,
    forms: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Bundle:
    """Parse and validate a deployment. `forms` / `services`, when given, are the names that exist;
    references to others are reported. Raises InvalidDiagram with every problem found."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    trees: dict[str, etree._Element] = {}
    problems = _add_dmn(parser, dmn_files or {})
    bundle = Bundle()
    for file, content in bpmn_files.items():
        try:
            root = parse_xml(content, file)
        except InvalidDiagram as e:
            problems.extend(e.problems)
            continue
        if etree.QName(root).namespace != BPMN_NS or etree.QName(root).localname != "definitions":
            problems.append(DiagramProblem.of(file, None, N_("not a BPMN 2.0 document (root must be bpmn:definitions)"),
                                              line=root.sourceline or 1))
            continue
        trees[file] = root
        try:
            parser.add_bpmn_xml(root, filename=file)
        except ValidationException as e:
            problems.append(_problem_from_validation(e, file, root))
        except Exception as e:  # noqa: BLE001 - parser internals fail on some malformed input
            problems.append(DiagramProblem.of(file, None, N_("cannot read diagram: %(error)s"), error=str(e)))
        # Our own checks run even when SpiffWorkflow refused the file, so one upload reports
        # everything that is wrong rather than one problem at a time.
        try:
            problems.extend(check_process_tree(root, file, forms=forms, services=services,
                                               used_forms=bundle.forms_used))
        except Exception as e:  # noqa: BLE001 - a checker bug must not turn into a 500
            problems.append(DiagramProblem.of(file, None, N_("cannot check diagram: %(error)s"), error=str(e)))
    problems.extend(_missing_called_processes(trees))
    if problems:
        raise InvalidDiagram(_deduplicated(problems))

    executable = {}
    for file, root in trees.items():
        for proc in root.iter(f"{{{BPMN_NS}}}process"):
            if proc.get("isExecutable", "false").lower() == "true":
                executable[proc.get("id")] = (file, proc)
    if not executable:
        for file, root in trees.items():
            for proc in root.iter(f"{{{BPMN_NS}}}process"):
                problems.append(DiagramProblem.of(
                    file, proc.get("id"), N_("process '%(name)s' is not executable: set isExecutable=\"true\""),
                    line=proc.sourceline, name=proc.get("name") or proc.get("id")))
        if not problems:
            problems.append(DiagramProblem.of(next(iter(trees), None), None, N_("no executable process")))
    for key, (file, proc) in executable.items():
        try:
            spec = parser.get_spec(key)
            subs = parser.get_subprocess_specs(key)
        except ValidationException as e:
            where = e.file_name or file
            problems.append(_problem_from_validation(e, where, trees.get(where)))
            continue
        except Exception as e:  # noqa: BLE001
            problems.append(DiagramProblem.of(file, key, N_("cannot build process: %(error)s"), error=str(e)))
            continue
        doc = proc.find(f"{{{BPMN_NS}}}documentation")
        bundle.processes[key] = ParsedProcess(
            key=key,
            name=proc.get("name") or key,
            file=file,
            spec=spec,
            subprocess_specs=subs,
            documentation=(doc.text or "").strip() if doc is not None else "",
            category=_process_property(proc, "category")[:64],
        )
    if problems:
        raise InvalidDiagram(_deduplicated(problems))
    return bundle


def _process_property(proc: etree._Element, name: str) -> str:
    """A `spiffworkflow:property` of the process element itself (not of one of its tasks)."""
    for prop in proc.iterfind(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF}}}properties/{{{SPIFF}}}property"):
        if prop.get("name") == name:
            return (prop.get("value") or "").strip()
    return ""


def _missing_called_processes(trees: Mapping[str, etree._Element]) -> list[DiagramProblem]:
    """Call activities must call a process of this deployment (SpiffWorkflow names no element)."""
    known = {proc.get("id") for root in trees.values() for proc in root.iter(f"{{{BPMN_NS}}}process")}
    problems = []
    for file, root in trees.items():
        for call in root.iter(f"{{{BPMN_NS}}}callActivity"):
            called = (call.get("calledElement") or "").strip()
            if called not in known:
                problems.append(DiagramProblem.of(
                    file, call.get("id"), N_("call activity '%(name)s' calls process '%(called)s', which is not in this deployment"),
                    name=call.get("name") or call.get("id"), called=called))
    return problems


def _deduplicated(problems: list[DiagramProblem]) -> list[DiagramProblem]:
    """Drop SpiffWorkflow's report of an element we already reported in our own words."""
    ours = {(p.file, p.element) for p in problems if p.template}
    out, seen = [], set()
    for p in problems:
        if p.template is None and p.element and (p.file, p.element) in ours:
            continue
        key = (p.file, p.element, p.message, p.line)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
