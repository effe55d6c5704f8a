"""The script sandbox, driven through real SpiffWorkflow 3.2.0 workflows."""

import os
import sys
import threading
import time
from xml.sax.saxutils import escape, quoteattr

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.sandbox import (
    SandboxEnvironment,
    SandboxScriptEngine,
    ScriptError,
    ScriptForbidden,
    ScriptTimeout,
    check_script,
    make_script_engine,
)

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="defs" targetNamespace="http://inkless.test/bpmn">
  <bpmn:process id="proc" isExecutable="true">
"""
FOOTER = """  </bpmn:process>
</bpmn:definitions>
"""


def script_process(script: str) -> str:
    return HEADER + f"""
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:scriptTask id="work" name="Work">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
""" + FOOTER


def gateway_process(condition: str) -> str:
    return HEADER + f"""
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="to_small">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>to_big</bpmn:outgoing>
      <bpmn:outgoing>to_small</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_big" sourceRef="gw" targetRef="big">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_small" sourceRef="gw" targetRef="small"/>
    <bpmn:scriptTask id="big"><bpmn:incoming>to_big</bpmn:incoming><bpmn:outgoing>f_big</bpmn:outgoing>
      <bpmn:script>route = "big"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="small"><bpmn:incoming>to_small</bpmn:incoming><bpmn:outgoing>f_small</bpmn:outgoing>
      <bpmn:script>route = "small"</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f_big" sourceRef="big" targetRef="end_big"/>
    <bpmn:sequenceFlow id="f_small" sourceRef="small" targetRef="end_small"/>
    <bpmn:endEvent id="end_big"><bpmn:incoming>f_big</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_small"><bpmn:incoming>f_small</bpmn:incoming></bpmn:endEvent>
""" + FOOTER


def service_process(operator: str, params: dict[str, tuple[str, str]], result_variable: str = "result") -> str:
    parameters = "\n".join(
        f"<spiffworkflow:parameter id={quoteattr(name)} type={quoteattr(kind)} value={quoteattr(expr)}/>"
        for name, (kind, expr) in params.items()
    )
    return HEADER + f"""
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="svc"/>
    <bpmn:serviceTask id="svc" name="Call service">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id={quoteattr(operator)} resultVariable={quoteattr(result_variable)}>
          <spiffworkflow:parameters>
            {parameters}
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="svc" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
""" + FOOTER


def start(xml: str, data: dict | None = None, **engine_options) -> BpmnWorkflow:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(xml.encode(), "x.bpmn")
    workflow = BpmnWorkflow(
        parser.get_spec("proc"), parser.get_subprocess_specs("proc"),
        script_engine=make_script_engine(**engine_options),
    )
    if data:
        workflow.get_next_task(state=TaskState.READY).set_data(**data)
    return workflow


def run(xml: str, data: dict | None = None, **engine_options) -> BpmnWorkflow:
    workflow = start(xml, data, **engine_options)
    workflow.do_engine_steps()
    return workflow


def task_data(workflow: BpmnWorkflow, spec_name: str) -> dict:
    return workflow.get_next_task(spec_name=spec_name).data


def run_script(script: str, data: dict | None = None, **engine_options) -> dict:
    workflow = run(script_process(script), data, **engine_options)
    assert workflow.is_completed()
    return task_data(workflow, "work")


def script_failure(script: str, data: dict | None = None, **engine_options) -> WorkflowTaskException:
    with pytest.raises(WorkflowTaskException) as caught:
        run(script_process(script), data, **engine_options)
    return caught.value


def causes(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


# ------------------------------------------------------------------------------- ordinary scripts

BUSINESS_SCRIPT = """
total = a + b
items.append(3)
order["status"] = "checked"
count = 0
for i, v in enumerate(lines):
    count += v * (i + 1)
positive = [y for y in lines if y > 0]
by_name = {name: len(name) for name in names}
greeting = f"Dear {customer}, you owe {total:.2f}"
first, *rest = sorted(lines, key=lambda x: -x)
biggest = max(lines)
evens = list(filter(lambda n: n % 2 == 0, range(10)))
while count > 10:
    count -= 10
try:
    parsed = int("not a number")
except ValueError:
    parsed = None
def helper_inside(x):
    return x * 2
doubled = helper_inside(21)
print("ignored output")
"""


def test_ordinary_script_results_land_in_task_data():
    data = run_script(BUSINESS_SCRIPT, {
        "a": 1.5, "b": 2, "items": [1, 2], "order": {"id": 7}, "lines": [2, -1, 4],
        "names": ["ann", "bo"], "customer": "Ms Smith",
    })
    assert data["total"] == 3.5
    assert data["items"] == [1, 2, 3]
    assert data["order"] == {"id": 7, "status": "checked"}
    assert data["count"] == 2 + (-1 * 2) + 4 * 3 - 10
    assert data["positive"] == [2, 4]
    assert data["by_name"] == {"ann": 3, "bo": 2}
    assert data["greeting"] == "Dear Ms Smith, you owe 3.50"
    assert (data["first"], data["rest"]) == (4, [2, -1])
    assert data["biggest"] == 4
    assert data["evens"] == [0, 2, 4, 6, 8]
    assert data["parsed"] is None
    assert data["doubled"] == 42
    # Functions, builtins and guards are not data and must not be left behind (like TaskDataEnvironment).
    assert "helper_inside" not in data
    assert not [key for key in data if key.startswith("_")]


def test_sandbox_modules_assigned_to_variables_do_not_end_up_in_task_data():
    data = run_script("m = math\nroot = m.sqrt(16)\nr = random\nflag = True\nnothing = None")
    assert data["root"] == 4.0
    assert data["flag"] is True and data["nothing"] is None
    assert "m" not in data and "r" not in data


@pytest.mark.parametrize(("amount", "route"), [(5000, "big"), (10, "small")])
def test_condition_routes_the_gateway(amount, route):
    workflow = run(gateway_process("amount > 1000 and len(str(amount)) > 0"), {"amount": amount})
    assert workflow.is_completed()
    assert task_data(workflow, route)["route"] == route
    other = workflow.get_next_task(spec_name="big" if route == "small" else "small")
    assert other is None or other.state != TaskState.COMPLETED


def test_forbidden_condition_fails_with_its_reason():
    with pytest.raises(WorkflowTaskException) as caught:
        run(gateway_process("amount.__class__ is int"), {"amount": 1})
    assert "Error evaluating expression" in str(caught.value)
    assert "starts with" in str(caught.value)
    assert any(isinstance(e, ScriptForbidden) for e in causes(caught.value))


def test_registered_helper_is_callable():
    data = run_script("net = vat_free(gross)\nnames = approvers_for(dept)", {"gross": 119.0, "dept": "IT"},
                      helpers={"vat_free": lambda gross: round(gross / 1.19, 2),
                               "approvers_for": lambda dept: [f"{dept.lower()}-lead"]})
    assert data["net"] == 100.0
    assert data["names"] == ["it-lead"]
    assert "vat_free" not in data


def test_helper_names_must_be_reachable_identifiers():
    with pytest.raises(ValueError):
        SandboxEnvironment(helpers={"_secret": print})


# ------------------------------------------------------------------------------- refusals


@pytest.fixture
def os_spy(monkeypatch):
    calls = []
    real_getpid = os.getpid

    def spy_system(command):
        calls.append(("system", command))
        return 0

    def spy_getpid():
        calls.append(("getpid",))
        return real_getpid()

    monkeypatch.setattr(os, "system", spy_system)
    monkeypatch.setattr(os, "getpid", spy_getpid)
    return calls


def test_import_is_refused_before_running(os_spy):
    error = script_failure("x = 1\nimport os\npid = os.getpid()")
    assert "import is not allowed" in str(error)
    assert error.error_type == "ScriptForbidden"
    assert error.line_number == 2
    assert any(isinstance(e, ScriptForbidden) for e in causes(error))
    assert os_spy == []


ESCAPES = [
    "import os\nos.system('true')",
    "from os import system\nsystem('true')",
    "().__class__.__bases__[0].__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
    ".__init__.__globals__['system']('true')",
    "getattr(x, '__class__')",
    "open('/etc/hostname').read()",
    "eval('1')",
    "exec('x=1')",
    "__import__('os').system('true')",
    "'{0.__class__}'.format(x)",
    "Exception.mro()[1]",
    "(lambda: 0).__globals__",
    "type(x)",
    "compile('1', 'f', 'eval')",
    "globals()['__builtins__']",
    "class Evil:\n    pass",
]


@pytest.mark.parametrize("script", ESCAPES)
def test_escape_attempts_fail_without_reaching_os(script, os_spy):
    error = script_failure(script, {"x": 1})
    assert isinstance(error, WorkflowTaskException)
    assert os_spy == []


@pytest.mark.parametrize(("script", "reason"), [
    ("().__class__.__bases__", '"__class__" is an invalid attribute name because it starts with "_"'),
    ("eval('1')", "Eval calls are not allowed"),
    ("exec('x=1')", "Exec calls are not allowed"),
    ("__import__('os')", '"__import__" is an invalid variable name'),
    ("try:\n    pass\nexcept:\n    pass", "bare 'except:' is not allowed"),
    ("while x:\n    try:\n        pass\n    finally:\n        break", "'break' inside 'finally' is not allowed"),
])
def test_refusals_name_the_problem(script, reason):
    error = script_failure(script, {"x": 1})
    assert error.error_type == "ScriptForbidden"
    assert reason in str(error)


def test_runtime_errors_keep_spiffworkflow_reporting():
    error = script_failure("a = 1\nb = lookup[5]", {"lookup": {}})
    # 3.2.0's reporter would crash concatenating the int key; ours reports it with the line.
    assert "KeyError" in str(error) and "5" in str(error)
    assert error.line_number == 2
    assert error.error_line == "b = lookup[5]"


def test_range_is_capped():
    error = script_failure("r = list(range(2_000_000))")
    assert "range()" in str(error)


# ------------------------------------------------------------------------------- time limit


def _assert_timed_out(error: BaseException, elapsed: float) -> None:
    assert isinstance(error, WorkflowTaskException)
    assert "time limit" in str(error)
    assert any(isinstance(e, ScriptTimeout) for e in causes(error))
    assert 0.25 <= elapsed < 2.0


@pytest.mark.parametrize("script", [
    "while True: pass",
    "while True:\n    try:\n        pass\n    except Exception:\n        pass",
    "x = [i * j for i in range(1_000_000) for j in range(1_000_000)]",
    "def spin():\n    while 1:\n        yield 1\ntotal = sum(spin())",
])
def test_endless_script_stops_after_time_limit(script):
    began = time.monotonic()
    error = script_failure(script, time_limit=0.3)
    _assert_timed_out(error, time.monotonic() - began)
    assert error.error_type == "ScriptTimeout"


def test_time_limit_restores_the_previous_trace_function():
    def outer_tracer(frame, event, arg):
        return None

    original = sys.gettrace()
    sys.settrace(outer_tracer)
    try:
        began = time.monotonic()
        error = script_failure("while True: pass", time_limit=0.3)
        elapsed = time.monotonic() - began
        after_failure = sys.gettrace()
        run_script("x = 1", time_limit=0.3)
        after_success = sys.gettrace()
    finally:
        sys.settrace(original)
    _assert_timed_out(error, elapsed)
    assert after_failure is outer_tracer
    assert after_success is outer_tracer


def test_time_limit_works_in_a_worker_thread():
    outcome = {}

    def outer_tracer(frame, event, arg):
        return None

    def worker():
        sys.settrace(outer_tracer)
        began = time.monotonic()
        try:
            run(script_process("while True: pass"), time_limit=0.3)
        except BaseException as error:  # noqa: B036 - handed to the main thread for assertions
            outcome["error"] = error
        outcome["elapsed"] = time.monotonic() - began
        outcome["trace"] = sys.gettrace()
        sys.settrace(None)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "sandboxed loop kept running in the worker thread"
    _assert_timed_out(outcome["error"], outcome["elapsed"])
    assert outcome["trace"] is outer_tracer


def test_condition_is_time_limited_too():
    env = SandboxEnvironment(time_limit=0.3)
    began = time.monotonic()
    with pytest.raises(ScriptTimeout):
        env.evaluate("any(i < 0 for i in range(1_000_000) for j in range(1_000_000))", {})
    assert time.monotonic() - began < 2.0


def test_task_data_cannot_replace_builtins_or_guards():
    env = SandboxEnvironment()
    assert env.evaluate("len(items)", {"items": [1, 2], "__builtins__": {"len": lambda _: 99}}) == 2
    with pytest.raises(ValueError):  # TaskDataEnvironment's fail-fast overwrite check is kept
        env.execute("x = 1", {"_getattr_": "nope"})


# ------------------------------------------------------------------------------- service tasks


def test_service_result_lands_in_result_variable():
    seen = {}

    def price_lookup(params, task_data):
        seen.update(params=params, customer=task_data.get("customer"))
        return {"sku": params["sku"], "total": params["qty"] * 2.5}

    workflow = run(
        service_process("price_lookup", {"sku": ("str", "sku"), "qty": ("int", "qty * 2")}, "quote"),
        {"sku": "A-1", "qty": 2, "customer": "c-9"},
        services={"price_lookup": price_lookup},
    )
    assert workflow.is_completed()
    assert seen == {"params": {"sku": "A-1", "qty": 4}, "customer": "c-9"}
    assert task_data(workflow, "svc")["quote"] == {"sku": "A-1", "total": 10.0}


def test_failing_service_surfaces_its_own_message():
    def ledger(params, task_data):
        raise RuntimeError("ledger offline")

    with pytest.raises(WorkflowTaskException) as caught:
        run(service_process("ledger", {"n": ("int", "1")}), services={"ledger": ledger})
    assert "ledger offline" in str(caught.value)
    assert "'script'" not in str(caught.value)
    chain = causes(caught.value)
    assert any(isinstance(e, ScriptError) for e in chain)
    assert any(isinstance(e, RuntimeError) and str(e) == "ledger offline" for e in chain)


def test_unknown_service_is_reported_by_name():
    with pytest.raises(WorkflowTaskException) as caught:
        run(service_process("nowhere", {}), services={})
    assert 'unknown service "nowhere"' in str(caught.value)


def test_service_parameters_are_sandboxed():
    with pytest.raises(WorkflowTaskException) as caught:
        run(service_process("echo", {"v": ("str", "().__class__")}), services={"echo": lambda p, d: p})
    assert "starts with" in str(caught.value)


def test_engine_defaults():
    engine = make_script_engine(time_limit=1.5)
    assert isinstance(engine, SandboxScriptEngine)
    assert isinstance(engine.environment, SandboxEnvironment)
    assert engine.environment.time_limit == 1.5


# ------------------------------------------------------------------------------- deploy-time check


def test_check_script_accepts_good_text():
    assert check_script(BUSINESS_SCRIPT) == []
    assert check_script("amount > 1000 and dept in ('IT', 'OPS')", "eval") == []
    assert check_script("  amount > 1000", "eval") == []  # conditions are often indented in the XML


@pytest.mark.parametrize(("source", "mode", "expected"), [
    ("import os", "exec", "import is not allowed"),
    ("x = (", "exec", "SyntaxError"),
    ("if x:\nprint(1)", "exec", "IndentationError"),
    ("x.__class__", "exec", "starts with"),
    ("import os", "eval", "SyntaxError"),
    ("amount >", "eval", "SyntaxError"),
    ("amount.__class__", "eval", "starts with"),
    ("__import__('os')", "eval", "__import__"),
])
def test_check_script_reports_problems(source, mode, expected):
    problems = check_script(source, mode)
    assert problems and expected in problems[0]
    assert problems[0].startswith("Line ")


@pytest.mark.parametrize(("source", "mode"), [(None, "exec"), (b"x = 1", "exec"), ("x", "single"),
                                              ("\0", "exec"), ("(" * 500 + ")" * 500, "eval")])
def test_check_script_never_raises(source, mode):
    problems = check_script(source, mode)
    assert isinstance(problems, list) and problems
