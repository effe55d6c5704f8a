"""Loading and validating diagrams: every refusal names what the designer must fix."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from engine.errors import DiagramProblem, InvalidDiagram
from engine.loader import load_bundle, parse_xml
from engine.runtime import Instance
from tests.engine.builders import (
    bpmn,
    chain,
    document,
    end,
    flow,
    load,
    process,
    ready,
    reload,
    script,
    script_engine,
    service,
    start,
    timer_boundary,
    user,
    xor,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
INVALID = FIXTURES / "bpmn" / "invalid"
FORMS = {p.name for p in (ROOT / "forms").glob("*.json")} | {p.name for p in (FIXTURES / "forms").glob("*.json")}
SERVICES = {"create_account", "send_mail", "notify_escalation"}


def problems_of(files: dict, **kwargs) -> list[DiagramProblem]:
    with pytest.raises(InvalidDiagram) as caught:
        load_bundle(files, **kwargs)
    assert caught.value.problems, "InvalidDiagram without problems"
    return caught.value.problems


def assert_clear(problem: DiagramProblem) -> None:
    """A message a designer can read: no Python internals."""
    assert isinstance(problem.message, str) and problem.message.strip()
    for noise in ("Traceback", "File \"", "NoneType", "object has no attribute", "KeyError"):
        assert noise not in problem.message, problem.message


# -- the invalid corpus (tests/fixtures/bpmn/invalid/README.md) -----------------------------------

# file -> (element the problems must name, or None; line when no element exists; words the message says)
CORPUS = {
    "not_xml.bpmn": (None, 1, "well-formed"),
    "not_bpmn.bpmn": (None, 3, "not a BPMN"),
    "xsd_violation.bpmn": ("review", None, "approvalRules"),
    "dangling_flow.bpmn": ("flow_2", None, "does_not_exist"),
    "no_start_event.bpmn": ("no_start_event", None, "start event"),
    "non_executable.bpmn": ("non_executable", None, "not executable"),
    "duplicate_id.bpmn": ("review", None, "unique"),
    "bad_condition.bpmn": ("flow_big", None, "condition"),
    "bad_script.bpmn": ("compute", None, "script"),
    "bad_prescript.bpmn": ("fill", None, "preScript"),
    "bad_timer.bpmn": ("wait_timer", None, "timer"),
    "bad_timer_iso.bpmn": ("wait_timer", None, "ISO 8601"),
    "missing_form.bpmn": ("fill_form", None, "missing_form.json"),
    "xxe.bpmn": ("xxe", None, "DOCTYPE"),
    "xxe_documentation.bpmn": ("submit", None, "DOCTYPE"),
    "internal_entity.bpmn": ("internal_entity", None, "DOCTYPE"),
    "service_id_clash.bpmn": ("create_account", None, "same as the service"),
    "camunda_service_task.bpmn": ("Activity_send_mail", None, "serviceTaskOperator"),
}


def test_the_corpus_table_covers_every_invalid_file():
    assert {p.name for p in INVALID.glob("*.bpmn")} == set(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_invalid_file_is_refused_naming_the_element(name):
    element, line, words = CORPUS[name]
    problems = problems_of({name: (INVALID / name).read_bytes()}, forms=FORMS, services=SERVICES)
    for p in problems:
        assert p.file == name
        assert_clear(p)
    if element is not None:
        named = [p for p in problems if p.element == element]
        assert named, f"no problem names {element}: {problems}"
        assert any(words in p.message for p in named), named
    else:
        assert any(p.line == line and words in p.message for p in problems), problems


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_invalid_file_is_refused_as_str_too(name):
    """The service may hand over decoded text; that must not change the verdict (or crash)."""
    text = (INVALID / name).read_bytes().decode("utf-8", errors="replace")
    with pytest.raises(InvalidDiagram):
        load_bundle({name: text}, forms=FORMS, services=SERVICES)


def test_xsd_message_writes_namespaces_as_prefixes():
    (problem,) = problems_of({"x.bpmn": (INVALID / "xsd_violation.bpmn").read_bytes()}, forms=FORMS)
    assert problem.line == 19
    assert "bpmn:approvalRules" in problem.message
    assert "{http://" not in problem.message


def test_dangling_flow_replaces_spiffs_misleading_message():
    problems = problems_of({"d.bpmn": (INVALID / "dangling_flow.bpmn").read_bytes()}, forms=FORMS)
    assert not any("found two items" in p.message for p in problems)
    assert [p.element for p in problems] == ["flow_2"]


def test_no_start_event_is_reported_once():
    problems = problems_of({"n.bpmn": (INVALID / "no_start_event.bpmn").read_bytes()}, forms=FORMS)
    assert len(problems) == 1


# -- XML safety ---------------------------------------------------------------------------------------

def test_external_entity_is_never_read():
    for name in ("xxe.bpmn", "xxe_documentation.bpmn"):
        problems = problems_of({name: (INVALID / name).read_bytes()})
        assert all("root:" not in p.message for p in problems)
        assert {p.element for p in problems} >= {"submit"}


@pytest.mark.parametrize("doctype", [
    "<!DOCTYPE bpmn:definitions>",
    '<!DOCTYPE bpmn:definitions SYSTEM "http://127.0.0.1:9/evil.dtd">',
    '<!DOCTYPE bpmn:definitions [<!ENTITY harmless "ok">]>',
])
def test_any_doctype_is_refused(doctype):
    xml = bpmn("p", start(), end(), chain("start", "end")).replace("?>\n", "?>\n" + doctype + "\n", 1)
    problems = problems_of({"d.bpmn": xml})
    assert all("DOCTYPE" in p.message for p in problems)
    assert problems[0].file == "d.bpmn" and problems[0].line


def test_billion_laughs_is_refused_quickly():
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    xml = (f'<?xml version="1.0"?>\n<!DOCTYPE bpmn:definitions [{entities}]>\n'
           + bpmn("lol", start(), end(), chain("start", "end")).split("?>\n", 1)[1]
           .replace('name="lol"', 'name="&a9;"'))
    started = time.perf_counter()
    problems = problems_of({"lol.bpmn": xml})
    assert time.perf_counter() - started < 2
    assert any("DOCTYPE" in p.message or "entity" in p.message for p in problems)


# Run apart, under a CPU-time limit (not the wall clock: other work on the machine does not
# count): the quadratic scan this guards against took over 120 s of CPU on this file.
_HOSTILE_DOCTYPE_RUN = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
from engine.errors import InvalidDiagram
from engine.loader import load_bundle
from tests.engine.builders import bpmn, chain, end, start, user
body = bpmn("p", start(), user("review"), end(), chain("start", "review", "end")).split("?>\\n", 1)[1]
refs = "&a;" * 1_500_000
body = body.replace('<bpmn:userTask id="review" name="review">',
                    '<bpmn:userTask id="review" name="review"><bpmn:documentation>' + refs + '</bpmn:documentation>', 1)
xml = '<?xml version="1.0"?>\\n<!DOCTYPE bpmn:definitions [<!ENTITY a "x">]>\\n' + body
assert 4_400_000 < len(xml) < 5 * 1024 * 1024, len(xml)  # under the upload limit
try:
    load_bundle({"d.bpmn": xml.encode()})
except InvalidDiagram as e:
    json.dump([p.as_dict() for p in e.problems], sys.stdout)
"""


def test_doctype_with_a_million_entity_references_is_refused_in_linear_time():
    """R-WF-1: designers upload diagrams; a 4.5 MB file of DOCTYPE + 1.5M `&a;` is refused, naming
    the file and the element that uses the entity, long before the CPU limit of the run."""
    run = subprocess.run([sys.executable, "-c", _HOSTILE_DOCTYPE_RUN], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]  # SIGXCPU past 20 s of CPU
    problems = json.loads(run.stdout)
    assert [(p["file"], p["element"]) for p in problems] == [("d.bpmn", "review")]
    assert "&a;" in problems[0]["message"] and "DOCTYPE" in problems[0]["message"]


def test_entities_in_comments_cdata_and_the_doctype_itself_are_not_blamed():
    xml = bpmn("p", start(), user("review"), script("work", "x = 1"), end(), chain("start", "review", "work", "end"))
    xml = xml.replace("?>\n", '?>\n<!-- &c; --><!DOCTYPE bpmn:definitions [<!ENTITY a "&b;"> <!ENTITY b "x">]>\n', 1)
    xml = xml.replace('<bpmn:userTask id="review" name="review">',
                      '<bpmn:userTask id="review" name="review">\n<!-- &a; -->\n<bpmn:documentation>&a;</bpmn:documentation>', 1)
    xml = xml.replace("<bpmn:script>x = 1</bpmn:script>", "<bpmn:script><![CDATA[x = '&a;']]></bpmn:script>", 1)
    problems = problems_of({"d.bpmn": xml})
    assert [(p.element, p.params.get("entity")) for p in problems] == [("review", "a")]


@pytest.mark.parametrize("prolog", [
    '<?xml version="1.0"?>\n<!-- a comment -->\n<?pi data?>\n  <!DOCTYPE bpmn:definitions>\n',
    "\ufeff<!DOCTYPE bpmn:definitions>\n",
])
def test_doctype_after_comments_and_instructions_is_refused(prolog):
    xml = prolog + bpmn("p", start(), end(), chain("start", "end")).split("?>\n", 1)[1]
    problems = problems_of({"d.bpmn": xml.encode("utf-8")})
    assert [p.message for p in problems] == ["DOCTYPE declarations are not allowed"]


def test_doctype_in_a_utf16_file_is_refused():
    """The look at the prolog reads ASCII-compatible bytes only; the parser still refuses the rest."""
    xml = bpmn("p", start(), end(), chain("start", "end")).replace(
        'encoding="UTF-8"?>\n', 'encoding="UTF-16"?>\n<!DOCTYPE bpmn:definitions>\n', 1)
    problems = problems_of({"d.bpmn": xml.encode("utf-16")})
    assert problems[0].file == "d.bpmn" and "DOCTYPE" in problems[0].message


def test_markup_that_only_mentions_doctype_or_entities_loads():
    """What the loader keeps accepting: the predefined entities, character references, and the
    words `<!DOCTYPE` or `&nbsp;` inside a comment, a CDATA section or escaped text."""
    code = "html = '<!DOCTYPE html><p>&nbsp;</p>'"
    xml = bpmn("p", start(), script("work", "x = 1"), end(), chain("start", "work", "end"))
    xml = xml.replace("<bpmn:script>x = 1</bpmn:script>", f"<bpmn:script><![CDATA[{code}]]></bpmn:script>", 1)
    xml = xml.replace('name="p"', 'name="R&amp;D &#20013;&#x6587; &lt;&gt;&quot;&apos;"', 1)
    xml = xml.replace("?>\n", "?>\n<!-- no <!DOCTYPE here -->\n", 1)
    xml = xml.replace('isExecutable="true">\n', 'isExecutable="true">\n'
                      "<bpmn:documentation>&lt;!DOCTYPE x&gt; &amp;nbsp;</bpmn:documentation>", 1)
    process_ = load_bundle({"ok.bpmn": xml}).processes["p"]
    assert process_.name == "R&D 中文 <>\"'"
    assert "<!DOCTYPE html>" in process_.spec.task_specs["work"].script
    assert process_.documentation == "<!DOCTYPE x> &nbsp;"


def test_a_chain_too_long_for_the_engine_is_refused_with_advice():
    """SpiffWorkflow recurses once per step when it builds a process; past a few hundred steps in a
    row the designer reads what to do, not a RecursionError."""
    ids = [f"step{i}" for i in range(1200)]
    problems = problems_of({"long.bpmn": bpmn("p", start(), *(user(i) for i in ids), end(), chain("start", *ids, "end"))})
    assert len(problems) == 1 and problems[0].element in ids
    assert "call activity" in problems[0].message and "Recursion" not in problems[0].message


def test_parse_xml_returns_the_root_of_a_clean_file():
    root = parse_xml(bpmn("p", start(), end(), chain("start", "end")), "p.bpmn")
    assert etree.QName(root).localname == "definitions"


def test_broken_xml_names_the_enclosing_element():
    xml = bpmn("p", start(), user("review"), end(), chain("start", "review", "end"))
    xml = xml.replace('<bpmn:userTask id="review" name="review">', '<bpmn:userTask id="review" name="review">\n<oops', 1)
    problems = problems_of({"b.bpmn": xml})
    assert problems[0].line and "well-formed" in problems[0].message
    assert problems[0].element == "review"


# -- valid diagrams ---------------------------------------------------------------------------------

def test_account_application_loads_with_its_forms():
    files = {"account_application.bpmn": (ROOT / "process_models" / "account_application.bpmn").read_bytes()}
    bundle = load_bundle(files, forms={p.name for p in (ROOT / "forms").glob("*.json")}, services=SERVICES)
    process = bundle.processes["account_application"]
    assert process.file == "account_application.bpmn"
    assert process.name
    # UI schemas are part of what a deployment must snapshot, not just the JSON schemas.
    assert bundle.forms_used == {
        "account_application.json", "account_application.uischema.json",
        "account_application_amend.json", "account_application_amend.uischema.json", "approval_review.json",
    }


def test_account_application_needs_its_forms():
    files = {"account_application.bpmn": (ROOT / "process_models" / "account_application.bpmn").read_bytes()}
    problems = problems_of(files, forms={"approval_review.json"}, services=SERVICES)
    missing = {p.params.get("form") for p in problems}
    assert "account_application.uischema.json" in missing and "account_application.json" in missing


def test_leave_request_loads_and_runs():
    bundle = load_bundle({"leave_request.bpmn": (FIXTURES / "bpmn" / "leave_request.bpmn").read_bytes()},
                         forms={"leave_request.json", "leave_review.json"}, services=SERVICES)
    process = bundle.processes["leave_request"]
    assert process.name == "请假申请"
    instance = Instance.start(process, script_engine(), {})
    instance.complete(ready(instance, "submit_leave").id, {"days": 5})
    instance = reload(instance)
    task = ready(instance, "dept_head_approve")
    assert "5 天" in task.instructions
    instance.complete(task.id, {"decision": "approve", "opinion": ""})
    assert instance.completed
    assert [s.element_id for s in instance.steps][-2:] == ["dept_head_decision", "end_approved"]


def test_validation_without_forms_or_services_still_collects_forms():
    bundle = load_bundle({"l.bpmn": (FIXTURES / "bpmn" / "leave_request.bpmn").read_bytes()})
    assert bundle.forms_used == {"leave_request.json", "leave_review.json"}


@pytest.mark.parametrize("name", ["camunda_modeler.bpmn", "signavio.bpmn"])
def test_foreign_diagram_is_parsed_and_refused_only_for_inkless_rules(name):
    problems = problems_of({name: (FIXTURES / "bpmn" / "foreign" / name).read_bytes()}, forms=FORMS)
    for p in problems:
        assert_clear(p)
        assert "performers" in p.message or "form or instructions" in p.message, p


def _make_inkless_ready(content: bytes) -> bytes:
    """What a designer does to a foreign diagram: give every user task performers and instructions."""
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    spiff = "http://spiffworkflow.org/bpmn/schema/1.0/core"
    root = etree.fromstring(content)
    for task in root.iterfind(".//bpmn:userTask", ns):
        ext = task.find("bpmn:extensionElements", ns)
        if ext is None:
            ext = etree.Element(f"{{{ns['bpmn']}}}extensionElements")
            task.insert(0, ext)
        etree.SubElement(ext, f"{{{spiff}}}instructionsForEndUser").text = "请处理。"
        props = etree.SubElement(ext, f"{{{spiff}}}properties")
        etree.SubElement(props, f"{{{spiff}}}property", name="performers", value="initiator")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("name", ["camunda_modeler.bpmn", "signavio.bpmn"])
def test_foreign_diagram_made_inkless_ready_loads_and_runs(name):
    content = _make_inkless_ready((FIXTURES / "bpmn" / "foreign" / name).read_bytes())
    bundle = load_bundle({name: content}, forms=FORMS, services=SERVICES)
    (process,) = bundle.processes.values()
    instance = Instance.start(process, script_engine(), {"amount": 10})
    for _ in range(10):
        if instance.completed:
            break
        instance.complete(instance.user_tasks()[0].id, {"amount": 10, "approved": True, "decision": "approve"})
        instance = reload(instance)
    assert instance.completed, instance.active_elements()


# -- the Inkless rules --------------------------------------------------------------------------------

def test_service_parameter_named_like_a_task_is_reported():
    xml = bpmn("p", start(), user("username"), service("make", "create_account", {"username": "username"}),
               end(), chain("start", "username", "make", "end"))
    problems = problems_of({"p.bpmn": xml}, services=SERVICES)
    (problem,) = problems
    assert problem.element == "username"
    assert "parameter" in problem.message and "make" in problem.message


def test_operator_named_like_another_task_is_reported():
    xml = bpmn("p", start(), user("create_account"), service("make", "create_account"), end(),
               chain("start", "create_account", "make", "end"))
    problems = problems_of({"p.bpmn": xml}, services=SERVICES)
    assert [p.element for p in problems] == ["create_account"]
    assert "serviceTaskOperator" in problems[0].message


@pytest.mark.parametrize(("value", "words"), [
    ("username +", "SyntaxError"),
    ("__import__('os').getpid()", "_"),
    ("", "no value"),
])
def test_service_parameter_value_is_checked(value, words):
    xml = bpmn("p", start(), service("make", "create_account", {"login": value}), end(),
               chain("start", "make", "end"))
    problems = problems_of({"p.bpmn": xml}, services=SERVICES)
    assert [p.element for p in problems] == ["make"]
    assert "login" in problems[0].message and words in problems[0].message


def test_valid_service_task_loads():
    xml = bpmn("p", start(), service("make", "create_account", {"login": "username.lower()"}), end(),
               chain("start", "make", "end"))
    assert load(xml, services=SERVICES).key == "p"


def test_unknown_service_is_reported():
    xml = bpmn("p", start(), service("make", "launch_rockets"), end(), chain("start", "make", "end"))
    (problem,) = problems_of({"p.bpmn": xml}, services=SERVICES)
    assert problem.element == "make" and "launch_rockets" in problem.message


def test_missing_ui_form_is_reported():
    xml = bpmn("p", start(), user("fill", form="leave_request.json", ui_form="leave_request.ui.json"), end(),
               chain("start", "fill", "end"))
    (problem,) = problems_of({"p.bpmn": xml}, forms={"leave_request.json"})
    assert problem.element == "fill" and "leave_request.ui.json" in problem.message


def test_form_check_is_skipped_when_forms_are_unknown():
    xml = bpmn("p", start(), user("fill", form="anything.json"), end(), chain("start", "fill", "end"))
    assert load(xml).key == "p"


@pytest.mark.parametrize(("part", "value", "ok"), [
    ("timeDuration", '"PT48H"', True),
    ("timeDuration", '"P1DT0.5S"', True),
    ("timeDuration", "reminder_after", True),  # an expression over task data: checked at run time
    ("timeDuration", '"2025-03-03T09:00:00+08:00"', False),
    ("timeDate", '"2025-03-03T09:00:00+08:00"', True),
    ("timeDate", '"2025-03-03T09:00:00"', False),  # no time zone: would use the server's
    ("timeDate", '"PT1H"', False),
    ("timeCycle", '"R3/PT10M"', True),
    ("timeCycle", '"PT10M"', False),
    ("timeDuration", "48", False),
])
def test_timer_literals_are_checked_as_spiff_would_read_them(part, value, ok):
    timer = (f'<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:{part}>{value}'
             f"</bpmn:{part}></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>\n")
    xml = bpmn("p", start(), timer, end(), chain("start", "wait", "end"))
    if ok:
        assert load(xml).key == "p"
    else:
        problems = problems_of({"p.bpmn": xml})
        assert [p.element for p in problems] == ["wait"]


def test_other_expressions_are_checked():
    loop = ('<bpmn:userTask id="each" name="each"><bpmn:extensionElements>'
            "<spiffworkflow:instructionsForEndUser>x</spiffworkflow:instructionsForEndUser>"
            '<spiffworkflow:properties><spiffworkflow:property name="performers" value="initiator"/>'
            "</spiffworkflow:properties></bpmn:extensionElements>"
            '<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3 +</bpmn:loopCardinality>'
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>\n")
    xml = bpmn("p", start(), loop, end(), chain("start", "each", "end"))
    (problem,) = problems_of({"p.bpmn": xml})
    assert problem.element == "each" and "loop cardinality" in problem.message


def test_boundary_event_on_a_missing_task_is_named():
    xml = bpmn("p", start(), user("work"), end(), timer_boundary("late", "nowhere", '"PT1H"'), end("e2"),
               chain("start", "work", "end"), flow("late", "e2"))
    problems = problems_of({"p.bpmn": xml})
    assert any(p.element == "late" and "nowhere" in p.message for p in problems)


def test_unreachable_element_and_bare_gateway_flows_are_named():
    xml = bpmn("p", start(), xor("choose"), user("a"), user("b"), user("island"), end(),
               flow("start", "choose"), flow("choose", "a", "x > 1", fid="f_a"), flow("choose", "b", fid="f_b"),
               chain("a", "end"), chain("b", "end"), chain("island", "end"))
    problems = problems_of({"p.bpmn": xml})
    by_element = {p.element: p.message for p in problems}
    assert "island" in by_element and "reached" in by_element["island"]
    assert "choose" in by_element and "f_b" in by_element["choose"]


def test_all_problems_of_all_files_are_reported_together():
    bad_script = bpmn("one", start(), script("calc", "x = = 1"), end(), chain("start", "calc", "end"))
    bad_xsd = (INVALID / "xsd_violation.bpmn").read_bytes()
    bad_xml = b"<bpmn:definitions"
    problems = problems_of({"one.bpmn": bad_script, "two.bpmn": bad_xsd, "three.bpmn": bad_xml}, forms=FORMS)
    assert {p.file for p in problems} == {"one.bpmn", "two.bpmn", "three.bpmn"}
    assert any(p.element == "calc" for p in problems)


def test_only_executable_processes_are_offered():
    library = process("docs_only", start("s2"), end("e2"), chain("s2", "e2"), executable=False)
    main = process("main", start(), user("work"), end(), chain("start", "work", "end"))
    bundle = load_bundle({"m.bpmn": document(main, library, pid="m")})
    assert set(bundle.processes) == {"main"}


def test_call_activity_to_a_missing_process_is_named():
    xml = bpmn("p", start(), '<bpmn:callActivity id="call_it" calledElement="ghost" />\n', end(),
               chain("start", "call_it", "end"))
    (problem,) = problems_of({"p.bpmn": xml})
    assert problem.element == "call_it" and "ghost" in problem.message


def test_same_process_in_two_files_is_reported():
    xml = bpmn("twice", start(), end(), chain("start", "end"))
    problems = problems_of({"a.bpmn": xml, "b.bpmn": xml})
    for p in problems:
        assert_clear(p)


def test_broken_dmn_names_its_file():
    xml = bpmn("p", start(), end(), chain("start", "end"))
    problems = problems_of({"p.bpmn": xml}, dmn_files={"rules.dmn": b"<definitions"})
    assert problems[0].file == "rules.dmn"


def test_problem_templates_carry_their_parameters():
    xml = bpmn("p", start(), user("fill", form="nope.json"), end(), chain("start", "fill", "end"))
    (problem,) = problems_of({"p.bpmn": xml}, forms=set())
    assert problem.template == "form file '%(form)s' does not exist"
    assert problem.params == {"form": "nope.json"}
    assert problem.message == problem.template % problem.params


def test_engine_imports_neither_flask_nor_sqlalchemy():
    code = ("import sys\n"
            "import engine.loader, engine.validation, engine.codec, engine.runtime, engine.clock, engine.errors\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
