"""Deploy-time checks that need the whole deployment, not one BPMN file (issue 13).

* Processes that call each other in a circle (a → b → a, possibly across files) would nest call
  activities without end; a process calling itself directly, and circles within one file, are
  reported per file by engine/validation.py, and at run time engine/runtime.py caps nesting anyway.
* DMN cells are Python expressions SpiffWorkflow evaluates (pitfall P7): input expressions, input
  entries (with ``?`` standing for the input, or an operator prefix such as ``> 5``) and output
  entries must compile in the sandbox, or the deployment is refused naming the rule.

`check_trees` takes what the loader has already parsed (and imports nothing of it, so
engine/loader.py can call it); `check_bundle` parses the files itself. Files that do not parse
are skipped: the loader reports them.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from lxml import etree

from .errors import N_, DiagramProblem, InvalidDiagram
from .restricted import check_script

__all__ = ["call_cycles", "check_bundle", "check_trees"]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

# SpiffWorkflow's own pattern (DMNEngine.evaluate): a '?' outside quotes stands for the input value.
_QUESTION = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")


def check_bundle(bpmn_files: Mapping[str, bytes | str], dmn_files: Mapping[str, bytes | str] | None = None
                 ) -> list[DiagramProblem]:
    return check_trees(_parsed(bpmn_files), _parsed(dmn_files or {}))


def check_trees(bpmn_trees: Mapping[str, etree._Element], dmn_trees: Mapping[str, etree._Element]
                ) -> list[DiagramProblem]:
    """The checks over parsed documents, by file name."""
    problems = call_cycles(bpmn_trees)
    for file, tree in dmn_trees.items():
        problems.extend(_decision_problems(tree, file))
    return problems


def _parsed(files: Mapping[str, bytes | str]) -> dict[str, etree._Element]:
    from .loader import parse_xml

    out = {}
    for file, content in files.items():
        try:
            out[file] = parse_xml(content, file)
        except InvalidDiagram:
            continue
    return out


# -- call activities ----------------------------------------------------------------------------------


def call_cycles(trees: Mapping[str, etree._Element]) -> list[DiagramProblem]:
    """Call activities on a circle of processes of length two or more, across `trees`."""
    calls: dict[str, list[tuple[str, etree._Element, str]]] = {}  # process -> [(called, element, file)]
    for file, root in trees.items():
        for process in root.iter(f"{{{BPMN_NS}}}process"):
            entries = calls.setdefault(process.get("id"), [])
            for call in process.iter(f"{{{BPMN_NS}}}callActivity"):
                entries.append(((call.get("calledElement") or "").strip(), call, file))

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            current = stack.pop()
            if current == goal:
                return True
            if current in seen:
                continue
            seen.add(current)
            stack.extend(called for called, _el, _file in calls.get(current, []))
        return False

    problems = []
    for process, entries in calls.items():
        for called, element, file in entries:
            # A direct self-call is validation.py's to report, in its own words.
            if called and called != process and reaches(called, process):
                problems.append(DiagramProblem.of(
                    file, element.get("id"),
                    N_("call activity '%(name)s' calls process '%(called)s', which calls '%(process)s' again; "
                       "processes may not call each other in a circle"),
                    name=element.get("name") or element.get("id"), called=called, process=process))
    return problems


# -- decision tables ------------------------------------------------------------------------------------


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _dmn(element: etree._Element) -> bool:
    # DMN 1.1, 1.2 and 1.3 (the versions SpiffWorkflow reads) differ in their namespace only.
    return "/DMN/" in (etree.QName(element).namespace or "")


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child) == name and _dmn(child)]


def _text(element: etree._Element) -> str:
    texts = _children(element, "text")
    return (texts[0].text or "").strip() if texts else ""


def _input_entry_expression(text: str) -> str:
    """The expression SpiffWorkflow evaluates for an input entry (DMNEngine.evaluate), with `v`
    standing for the input expression."""
    if _QUESTION.search(text):
        return _QUESTION.sub("v", text)
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return f"v {text}"  # an operator prefix such as "> 5"
    return f"(v) == ({text})"


def _decision_problems(root: etree._Element, file: str) -> list[DiagramProblem]:
    problems = []

    def add(element: etree._Element, template: str, **params) -> None:
        problems.append(DiagramProblem.of(file, element.get("id"), template, line=element.sourceline, **params))

    for table in root.iter():
        if _local(table) != "decisionTable" or not _dmn(table):
            continue
        inputs = _children(table, "input")
        outputs = _children(table, "output")
        for number, column in enumerate(inputs, start=1):
            for expression in _children(column, "inputExpression"):
                text = _text(expression)
                for msg in check_script(text, "eval") if text else []:
                    add(column, N_("decision input %(column)s: %(error)s"),
                        column=column.get("label") or column.get("id") or number, error=msg)
        for row, rule in enumerate(_children(table, "rule"), start=1):
            for index, entry in enumerate(_children(rule, "inputEntry")):
                text = _text(entry)
                if not text or text == "-":
                    continue
                column = inputs[index] if index < len(inputs) else None
                label = (column.get("label") or column.get("id")) if column is not None else index + 1
                for msg in check_script(_input_entry_expression(text), "eval"):
                    add(rule, N_("rule %(row)s, input %(column)s: %(error)s"), row=row, column=label, error=msg)
            for index, entry in enumerate(_children(rule, "outputEntry")):
                text = _text(entry)
                if not text:
                    continue
                column = outputs[index] if index < len(outputs) else None
                label = (column.get("name") or column.get("label") or column.get("id")) if column is not None \
                    else index + 1
                for msg in check_script(text, "eval"):
                    add(rule, N_("rule %(row)s, output %(column)s: %(error)s"), row=row, column=label, error=msg)
    return problems
