"""Scenario tests: run a process with sample data and check the path it takes.

A scenario is a JSON document saved with a model (`process_models/<key>/tests/*.json`) or typed into
the studio's "try it" panel. It starts the process with sample data, completes user tasks in order,
delivers messages, moves a private clock to fire timers, and answers service tasks (and helpers
that would need the database) with the results it declares. Nothing outside the engine is
touched: scripts, conditions and DMN tables run in the production sandbox, so a scenario that
passes here takes the same path on the platform.

The format is documented in docs/modelling.md ("Scenario tests"); `run_scenario` never raises for
a bad scenario or diagram, it reports failures.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator, FormatChecker
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState

from . import clock, starts
from .errors import N_, EngineError, InvalidDiagram
from .loader import BPMN_NS, ParsedProcess, load_bundle, parse_xml
from .runtime import Instance
from .sandbox import SandboxEnvironment, SandboxScriptEngine, ScriptError

__all__ = ["DEFAULT_NOW", "Failure", "run_scenario"]

# The platform's tests run at this moment too (tests/conftest.py `frozen`), so dates in sample
# data mean the same thing in a scenario and in a service test.
DEFAULT_NOW = "2026-12-01T09:00:00+08:00"
DECISIONS = ("approve", "return", "reject")
_TICK = dt.timedelta(microseconds=1)
_MAX_TIMER_FIRES = 200  # per "advance": a cycle timer must not spin a scenario forever
# A draft that loops through gateways and scripts without ever waiting would run forever; the
# studio runs drafts inside a web request, so a scenario gets this much work and no more.
MAX_EVALUATIONS = 5_000
MAX_SECONDS = 20.0
# SpiffWorkflow looks for ready tasks only 1000 levels down the task tree, so a loop that runs ~500
# times in one go simply stops and the process looks finished; say so long before that.
MAX_ELEMENTS_PER_STEP = 300


class Failure(NamedTuple):
    """One failure: English text, and its template and parameters for the user's language
    (the service translates `template` % `params`, as for DiagramProblem)."""

    template: str
    params: dict

    @property
    def message(self) -> str:
        return self.template % self.params if self.params else self.template

    def as_dict(self) -> dict:
        return {"message": self.message, "template": self.template, "params": self.params}


def _fail(template: str, **params: Any) -> Failure:
    return Failure(template, params)


class _Stop(Exception):
    """The scenario cannot go on; `failures` say why."""

    def __init__(self, *failures: Failure):
        super().__init__(failures[0].message if failures else "")
        self.failures = list(failures)


# ------------------------------------------------------------------------------ declared answers


class _Answers:
    """The results a scenario declares for one service or helper, handed out in call order.

    A list is the sequence of results of successive calls; any other value answers every call.
    (A service that returns a list is declared as a list holding that list.)"""

    def __init__(self, kind: str, name: str, declared: Any, calls: list[dict]):
        self.kind, self.name, self.declared, self.calls = kind, name, declared, calls
        self.count = 0

    def next(self, params: Any) -> Any:
        self.count += 1
        self.calls.append({self.kind: self.name, "params": params})
        if not isinstance(self.declared, list):
            # A copy each time: a script that changes what a helper returned must not change the next answer.
            return copy.deepcopy(self.declared)
        if self.count > len(self.declared):
            raise ScriptError(f"{self.kind} '{self.name}' was called {self.count} times, but the scenario "
                              f"declares only {len(self.declared)} results")
        return copy.deepcopy(self.declared[self.count - 1])


def _service_stub(name: str, declared: Mapping, calls: list[dict]) -> Callable:
    if name not in declared:
        def missing(params: dict, task_data: dict) -> Any:
            raise ScriptError(f"no result declared for service '{name}': add it under \"services\" in the scenario")
        return missing
    answers = _Answers("service", name, declared[name], calls)
    return lambda params, task_data: answers.next(params)


def _helper_stub(name: str, declared: Any, calls: list[dict]) -> Callable:
    answers = _Answers("helper", name, declared, calls)
    return lambda *args, **kwargs: answers.next({"args": list(args), **kwargs})


def _services_called(process: ParsedProcess) -> set[str]:
    specs = [process.spec, *process.subprocess_specs.values()]
    return {spec.operation_name for proc in specs for spec in proc.task_specs.values()
            if getattr(spec, "operation_name", None)}


class _Budgeted(SandboxEnvironment):
    """The production sandbox, counting every script and condition against the scenario's budget."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spent = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def _spend(self) -> None:
        self.spent += 1
        if self.spent > MAX_EVALUATIONS or time.monotonic() > self.deadline:
            raise ScriptError(f"the scenario stopped after {self.spent - 1} scripts and conditions: "
                              "does the diagram loop without waiting for a task, message or timer?")

    def evaluate(self, expression, context, external_context=None):
        self._spend()
        return super().evaluate(expression, context, external_context)

    def execute(self, script, context, external_context=None):
        self._spend()
        return super().execute(script, context, external_context)


# ------------------------------------------------------------------------------------ the run


def run_scenario(files: dict[str, bytes], process_id: str, scenario: dict, *, forms=None) -> dict:
    """Run `scenario` against process `process_id` of `files` (name → .bpmn/.dmn content).

    `forms`, when given, maps form file names to JSON schemas; each step's data is then checked
    against its task's form. Returns {"ok", "path", "waiting", "data", "failures", "steps"} plus
    "flows" (sequence flow ids taken), "calls" (service and helper calls with their parameters),
    "messages" (messages the process sent, with their payloads) and "failure_details" (each failure
    as {"message", "template", "params"}, for saying it in the user's language).
    """
    run = _Run(files, process_id, scenario, forms)
    try:
        run.execute()
    except _Stop as stop:
        run.failures.extend(stop.failures)
    return run.result()


class _Run:
    def __init__(self, files, process_id, scenario, forms):
        self.files, self.process_id, self.scenario, self.forms = files or {}, process_id, scenario, forms
        self.failures: list[Failure] = []
        self.calls: list[dict] = []
        self.instance: Instance | None = None
        self.flow_ids: dict[tuple[str, str], list[str]] = {}

    # -- set-up -------------------------------------------------------------------------------
    def execute(self) -> None:
        _check_shape(self.scenario)
        process = self._process()
        declared = self.scenario.get("services") or {}
        services = {name: _service_stub(name, declared, self.calls) for name in _services_called(process)}
        helpers = {name: _helper_stub(name, value, self.calls)
                   for name, value in (self.scenario.get("helpers") or {}).items()}
        try:
            engine = SandboxScriptEngine(_Budgeted(helpers=helpers, services=services))
        except ValueError as e:
            raise _Stop(_fail(N_("helpers: %(error)s"), error=str(e))) from None
        self.clock = clock.FrozenClock(_moment(self.scenario.get("now", DEFAULT_NOW)))
        with clock.local(self.clock):
            self.instance = self._start(process, engine)
            self._check_unit(None, 0)
            for number, step in enumerate(self.scenario.get("steps") or [], start=1):
                before = len(self.instance.steps)
                self._step(number, step)
                self._check_unit(number, before)
        self._check_expectations()

    def _process(self) -> ParsedProcess:
        bpmn = {n: c for n, c in self.files.items() if not n.lower().endswith((".dmn", ".json"))}
        dmn = {n: c for n, c in self.files.items() if n.lower().endswith(".dmn")}
        try:
            bundle = load_bundle(bpmn, dmn)
        except InvalidDiagram as e:
            raise _Stop(_fail(N_("the diagram is invalid: %(problems)s"), problems=str(e))) from None
        if self.process_id not in bundle.processes:
            raise _Stop(_fail(N_("process '%(process)s' is not in the files (found: %(found)s)"),
                              process=self.process_id, found=", ".join(sorted(bundle.processes))))
        for content in bpmn.values():
            self.flow_ids.update(_flows_by_ends(parse_xml(content, "")))
        return bundle.processes[self.process_id]

    def _start(self, process: ParsedProcess, engine) -> Instance:
        start_by = self.scenario.get("start_by") or {}
        data = self.scenario.get("start") or {}
        try:
            if "message" in start_by:
                return starts.begin_by_message(process, engine, start_by["message"], start_by.get("payload") or {})
            if "timer" in start_by:
                return starts.begin_by_timer(process, engine, start_by["timer"])
            return starts.begin(process, engine, data)
        except EngineError as e:
            raise _Stop(_fail(N_("cannot start: %(error)s"), error=f"{type(e).__name__}: {e}")) from None

    # -- steps --------------------------------------------------------------------------------
    def _step(self, number: int, step: dict) -> None:
        if "task" in step:
            self._complete(number, step["task"], step.get("data") or {}, step.get("match") or {})
        elif "message" in step:
            try:
                self.instance.deliver(step["message"], step.get("payload") or {})
            except EngineError as e:
                raise _Stop(_fail(N_("step %(step)s: message '%(message)s' is not caught: %(error)s; "
                                     "waiting for messages: %(waiting)s"), step=number, message=step["message"],
                                  error=str(e), waiting=", ".join(self.instance.waiting_messages()) or "-")) from None
        elif "advance" in step:
            self._advance(number, step["advance"])
        else:
            raise _Stop(_fail(N_("step %(step)s: expected one of \"task\", \"message\" or \"advance\", got %(keys)s"),
                              step=number, keys=", ".join(sorted(map(str, step))) or "-"))

    def _complete(self, number: int, element: str, data: dict, match: Mapping) -> None:
        ready = [t for t in self.instance.user_tasks() if t.element_id == element]
        # "match" picks one instance of a multi-instance task by its data (e.g. the department).
        chosen = [t for t in ready if all(t.data.get(k) == v for k, v in match.items())]
        if ready and not chosen:
            raise _Stop(_fail(N_("step %(step)s: no ready '%(task)s' has %(match)s; the ready ones have %(ready)s"),
                              step=number, task=element, match=_text(match),
                              ready=_text([{k: t.data.get(k) for k in match} for t in ready])))
        ready = chosen
        if not ready:
            if self.instance.completed:
                raise _Stop(_fail(N_("step %(step)s: task '%(task)s' is not ready (the process has ended); "
                                     "path so far: %(path)s"), step=number, task=element, path=self._path_text()))
            raise _Stop(_fail(N_("step %(step)s: task '%(task)s' is not ready (waiting at: %(waiting)s); "
                                 "path so far: %(path)s"), step=number, task=element,
                              waiting=", ".join(self._waiting()) or "-", path=self._path_text()))
        task = ready[0]
        if self.forms is not None:
            problems = _form_problems(number, task, data, self.forms)
            if problems:
                raise _Stop(*problems)
        self.instance.complete(task.id, data)

    def _advance(self, number: int, duration: str) -> None:
        try:
            parsed = TimerEventDefinition.parse_iso_duration(str(duration))
            target = self.clock.current + TimerEventDefinition.get_timedelta_from_start(parsed, self.clock.current)
        except Exception:  # noqa: BLE001 - SpiffWorkflow raises assorted errors for a bad duration
            raise _Stop(_fail(N_("step %(step)s: \"advance\" needs an ISO 8601 duration such as \"P3D\", got %(value)s"),
                              step=number, value=_text(duration))) from None
        # Fire timers one due time at a time: a timer armed when another fires (an escalation
        # after an overdue deadline) counts from that moment, as it would on the platform.
        # SpiffWorkflow fires a timer only once its moment has passed, hence the microsecond.
        for _ in range(_MAX_TIMER_FIRES):
            due = self.instance.next_timer_due()
            if due is None or due > target:
                break
            self.clock.current = max(self.clock.current, due + _TICK)
            self.instance.fire_due_timers()
            self._check_incidents(number)
            if self.instance.next_timer_due() == due:
                break  # the same timer is still due: nothing more will fire
        self.clock.current = max(self.clock.current, target)
        self.instance.fire_due_timers()

    def _check_unit(self, step: int | None, before: int) -> None:
        self._check_incidents(step)
        if len(self.instance.steps) - before > MAX_ELEMENTS_PER_STEP:
            template = (N_("start: more than %(count)s elements ran without waiting: does the diagram loop without "
                           "waiting for a task, message or timer?") if step is None else
                        N_("step %(step)s: more than %(count)s elements ran without waiting: does the diagram loop "
                           "without waiting for a task, message or timer?"))
            raise _Stop(_fail(template, step=step, count=MAX_ELEMENTS_PER_STEP))

    def _check_incidents(self, step: int | None) -> None:
        """A failed step (script, service, timer expression) ends the scenario; `step` None is the start."""
        if not self.instance.incidents:
            return
        process = self.instance.process
        names = {spec.bpmn_id: spec.bpmn_name for proc in (process.spec, *process.subprocess_specs.values())
                 for spec in proc.task_specs.values()}
        template = (N_("start: element '%(element)s' (%(name)s) failed: %(error)s") if step is None
                    else N_("step %(step)s: element '%(element)s' (%(name)s) failed: %(error)s"))
        raise _Stop(*[_fail(template, step=step, element=i.element, name=names.get(i.element) or i.element,
                            error=i.message) for i in self.instance.incidents])

    # -- expectations ---------------------------------------------------------------------------
    def _check_expectations(self) -> None:
        expect = self.scenario.get("expect") or {}
        path = self._path()
        wanted = list(expect.get("path") or [])
        position = 0
        for index, element in enumerate(wanted):
            try:
                position = path.index(element, position) + 1
            except ValueError:
                if index:
                    self.failures.append(_fail(N_("expected path: '%(element)s' was not reached after '%(previous)s'; "
                                                  "path taken: %(path)s"), element=element,
                                               previous=wanted[index - 1], path=self._path_text()))
                else:
                    self.failures.append(_fail(N_("expected path: '%(element)s' was not reached; path taken: %(path)s"),
                                               element=element, path=self._path_text()))
                break
        if "end" in expect:
            ends = expect["end"] if isinstance(expect["end"], list) else [expect["end"]]
            if not self.instance.completed and self._waiting():
                self.failures.append(_fail(N_("expected the process to end at %(ends)s, but it is waiting at: %(waiting)s"),
                                           ends=", ".join(map(str, ends)), waiting=", ".join(self._waiting())))
            elif not self.instance.completed:
                self.failures.append(_fail(N_("expected the process to end at %(ends)s, but it is still waiting for "
                                              "a timer or a message"), ends=", ".join(map(str, ends))))
            for end in ends:
                if self.instance.completed and end not in path:
                    self.failures.append(_fail(N_("expected end '%(end)s' was not reached; path taken: %(path)s"),
                                               end=end, path=self._path_text()))
        if "waiting" in expect and sorted(set(expect["waiting"])) != sorted(set(self._waiting())):
            self.failures.append(_fail(N_("expected waiting at %(expected)s, but waiting at %(actual)s"),
                                       expected=", ".join(expect["waiting"]) or "-",
                                       actual=", ".join(self._waiting()) or "-"))
        thrown = [m["name"] for m in self._messages()]
        for name in expect.get("messages") or []:
            if name not in thrown:
                self.failures.append(_fail(N_("expected message '%(message)s' to be sent; sent: %(sent)s"),
                                           message=name, sent=", ".join(thrown) or "-"))
        data = self._data()
        for key, value in (expect.get("data") or {}).items():
            if key not in data:
                self.failures.append(_fail(N_("expected data '%(key)s' = %(expected)s, but it is not set"),
                                           key=key, expected=_text(value)))
            elif data[key] != value:
                self.failures.append(_fail(N_("expected data '%(key)s' = %(expected)s, got %(actual)s"),
                                           key=key, expected=_text(value), actual=_text(data[key])))

    # -- result ---------------------------------------------------------------------------------
    def _path(self) -> list[str]:
        return [s.element_id for s in self.instance.steps] if self.instance else []

    def _path_text(self) -> str:
        return " → ".join(self._path()) or "-"

    def _waiting(self) -> list[str]:
        return [t.element_id for t in self.instance.user_tasks()] if self.instance else []

    def _data(self) -> dict:
        return json.loads(json.dumps(self.instance.data, default=str)) if self.instance else {}

    def _messages(self) -> list[dict]:
        """Messages the process sent (thrown), with their payloads."""
        if self.instance is None:
            return []
        return json.loads(json.dumps([{"name": getattr(e.event_definition, "name", None), "payload": e.payload}
                                      for e in self.instance.outbox], default=str))

    def _flows(self) -> list[str]:
        """Sequence flows taken: from each completed element to the element it led to."""
        if self.instance is None:
            return []
        taken = []
        for task in _completed_tasks(self.instance):
            source = task.parent
            while source is not None and source.task_spec.bpmn_id is None:
                source = source.parent
            if source is not None:
                taken.append((task.last_state_change, self.flow_ids.get((source.task_spec.bpmn_id, task.task_spec.bpmn_id))))
        return list(dict.fromkeys(f for _, ids in sorted(taken, key=lambda t: t[0]) for f in ids or []))

    def result(self) -> dict:
        return {
            "ok": not self.failures,
            "path": self._path(),
            "waiting": self._waiting(),
            "data": self._data(),
            "failures": [f.message for f in self.failures],
            "steps": [{"element": s.element_id, "name": s.name, "kind": s.kind}
                      for s in (self.instance.steps if self.instance else [])],
            "flows": self._flows(),
            "calls": self.calls,
            "messages": self._messages(),
            "failure_details": [f.as_dict() for f in self.failures],
        }


# ----------------------------------------------------------------------------------- helpers


def _check_shape(scenario: Any) -> None:
    if not isinstance(scenario, Mapping):
        raise _Stop(_fail(N_("a scenario must be a JSON object")))
    for key, kind in (("start", Mapping), ("start_by", Mapping), ("services", Mapping), ("helpers", Mapping),
                      ("expect", Mapping), ("steps", list)):
        if scenario.get(key) is not None and not isinstance(scenario[key], kind):
            raise _Stop(_fail(N_("\"%(key)s\" must be a list") if kind is list else N_("\"%(key)s\" must be an object"),
                              key=key))
    for number, step in enumerate(scenario.get("steps") or [], start=1):
        if not isinstance(step, Mapping):
            raise _Stop(_fail(N_("step %(step)s must be an object"), step=number))
        if not all(isinstance(step.get(key, {}), Mapping) for key in ("data", "payload", "match")):
            raise _Stop(_fail(N_("step %(step)s: \"data\", \"payload\" and \"match\" must be objects"), step=number))


def _moment(value: Any) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise _Stop(_fail(N_("\"now\" must be an ISO 8601 date and time, got %(value)s"), value=_text(value))) from None
    if moment.tzinfo is None:
        raise _Stop(_fail(N_("\"now\" needs a time zone, e.g. %(example)s"), example=DEFAULT_NOW))
    return moment


def _form_problems(step: int, task, data: dict, forms: Mapping[str, dict]) -> list[Failure]:
    approval = str(task.properties.get("approval", "")).lower() == "true"
    if task.form and task.form not in forms:
        return [_fail(N_("step %(step)s (%(task)s): the task's form '%(form)s' is not among the forms given"),
                      step=step, task=task.element_id, form=task.form)]
    schema = dict(forms.get(task.form) or {"type": "object"}) if task.form else {"type": "object"}
    if approval:
        # The platform adds the approval decision to every approval task's form (R-WF-2).
        schema["properties"] = {**schema.get("properties", {}), "decision": {"enum": list(DECISIONS)},
                                "opinion": {"type": "string"}}
        schema["required"] = [*schema.get("required", []), "decision"]
    problems = []
    for error in Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(data):
        problems.append(_fail(N_("step %(step)s (%(task)s): form '%(form)s', field '%(field)s': %(error)s"),
                              step=step, task=task.element_id, form=task.form or "-",
                              field=".".join(str(p) for p in error.absolute_path) or "data", error=error.message))
    if approval and data.get("decision") in ("return", "reject") and not str(data.get("opinion") or "").strip():
        problems.append(_fail(N_("step %(step)s (%(task)s): an opinion is required when returning or rejecting"),
                              step=step, task=task.element_id))
    return problems


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _flows_by_ends(root) -> dict[tuple[str, str], list[str]]:
    flows: dict[tuple[str, str], list[str]] = {}
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        flows.setdefault((flow.get("sourceRef"), flow.get("targetRef")), []).append(flow.get("id"))
    return flows


def _completed_tasks(instance: Instance) -> list:
    workflows = [instance.workflow, *instance.workflow.subprocesses.values()]
    return [t for w in workflows for t in w.tasks.values()
            if t.state == TaskState.COMPLETED and t.task_spec.bpmn_id is not None]
