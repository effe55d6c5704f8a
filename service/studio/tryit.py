""""Try it": run a draft in a sandbox, by hand or from a scenario.

Nothing is persisted and nothing leaves the sandbox: no instance row, no open task, no
notification; every service task is answered with the sample result the scenario declares (a
service without one fails the run, it is never called for real). Stepping by hand is the same
call with a growing list of steps: the browser keeps the steps, the server replays them.

The scenario format and result are the contract of engine/scenarios.py; when that module is
present it runs the scenario, otherwise the minimal runner below does.
"""
from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from engine.errors import InvalidDiagram, TaskNotFound, TaskNotReady
from engine.loader import load_bundle
from engine.sandbox import make_script_engine
from engine.starts import begin

from ..forms import is_approval
from ..i18n import translate_problem

MAX_STEPS = 200


def _stub_services(results: dict, names) -> dict:
    def stub(name):
        def answer(params: dict, context: dict) -> Any:
            if name not in results:
                raise LookupError(_("the scenario declares no sample result for service '%(name)s'", name=name))
            return results[name]
        return answer
    return {name: stub(name) for name in {*names, *results}}


def _shape_problems(scenario: dict) -> list[str]:
    problems = []
    for field in ("start", "services", "helpers", "expect"):
        if not isinstance(scenario.get(field) or {}, dict):
            problems.append(_("'%(field)s' must be an object", field=field))
    steps = scenario.get("steps") or []
    if not isinstance(steps, list) or not all(
            isinstance(s, dict) and isinstance(s.get("task"), str) and isinstance(s.get("data") or {}, dict)
            for s in steps):
        problems.append(_("'steps' must be a list of {\"task\": element id, \"data\": {…}}"))
    return problems


def _run_locally(files: dict[str, bytes], process_id: str, scenario: dict) -> dict:
    from ..services import SERVICES

    if problems := _shape_problems(scenario):
        return {"ok": False, "path": [], "waiting": [], "data": {}, "ready": [], "failures": problems}
    bpmn = {n: c for n, c in files.items() if n.lower().endswith((".bpmn", ".xml"))}
    dmn = {n: c for n, c in files.items() if n.lower().endswith(".dmn")}
    failures: list[str] = []
    try:
        process = load_bundle(bpmn, dmn).processes[process_id]
    except InvalidDiagram as e:
        return {"ok": False, "path": [], "waiting": [], "data": {}, "ready": [],
                "failures": [f"{p.element or p.file}: {translate_problem(p.template, p.params, p.message)}"
                             for p in e.problems]}
    except KeyError:
        return {"ok": False, "path": [], "waiting": [], "data": {}, "ready": [],
                "failures": [_("no executable process '%(id)s'", id=process_id)]}
    # Helpers too are the scenario's sample values, never the platform's own functions.
    helpers = {name: (lambda *_a, _value=value, **_k: _value) for name, value in (scenario.get("helpers") or {}).items()}
    engine = make_script_engine(helpers=helpers, services=_stub_services(scenario.get("services") or {}, SERVICES),
                                time_limit=1.0)
    instance = begin(process, engine, dict(scenario.get("start") or {}))
    for number, step in enumerate((scenario.get("steps") or [])[:MAX_STEPS], start=1):
        if instance.incidents:
            break
        element = step.get("task")
        ready = [t for t in instance.user_tasks() if t.element_id == element]
        if not ready:
            waiting = ", ".join(t.element_id for t in instance.user_tasks()) or "-"
            failures.append(_("step %(n)s: '%(element)s' is not waiting for input (waiting: %(waiting)s)",
                              n=number, element=element, waiting=waiting))
            break
        try:
            instance.complete(ready[0].id, dict(step.get("data") or {}))
        except (TaskNotFound, TaskNotReady) as e:
            failures.append(_("step %(n)s: %(error)s", n=number, error=e))
            break
    failures += [f"{i.element or '?'}: {i.message}" for i in instance.incidents]
    path = [s.element_id for s in instance.steps]
    failures += _unmet(scenario.get("expect") or {}, path, instance.completed)
    return {
        "ok": not failures,
        "path": path,
        "waiting": [a["element_id"] for a in instance.active_elements()],
        "data": _json_safe(instance.data),
        "ready": [{"element_id": t.element_id, "name": t.name, "form": t.form, "ui_form": t.ui_form,
                   "approval": is_approval(t.properties), "instructions": t.instructions}
                  for t in instance.user_tasks()],
        "failures": failures,
    }


def _unmet(expect: dict, path: list[str], completed: bool) -> list[str]:
    out = []
    position = 0
    for wanted in expect.get("path") or []:
        try:
            position = path.index(wanted, position) + 1
        except ValueError:
            out.append(_("expected path element '%(element)s' was not reached in that order", element=wanted))
            break
    end = expect.get("end")
    if end and not (completed and path and path[-1] == end):
        if completed and path:
            out.append(_("expected to end at '%(end)s', but ended at '%(actual)s'", end=end, actual=path[-1]))
        else:
            out.append(_("expected to end at '%(end)s', but the run did not end", end=end))
    return out


def _json_safe(data: dict) -> dict:
    import json

    return json.loads(json.dumps(data, default=str))


def _shared_runner():
    """engine/scenarios.py of this very engine package, once it is merged (an editable install
    elsewhere on the path must not lend a runner written for another version of the engine)."""
    from pathlib import Path

    import engine

    if not (Path(engine.__file__).parent / "scenarios.py").exists():
        return _run_locally
    from engine.scenarios import run_scenario  # type: ignore[import-not-found]

    return run_scenario


run_scenario = _shared_runner()


def run(files: dict[str, bytes], process_id: str, scenario: dict) -> dict:
    result = run_scenario(files, process_id, scenario)
    if "ready" not in result:
        # The shared runner does not say what the waiting tasks ask for; the page needs that to
        # step by hand, so ask the local runner (same replay, nothing persisted either way).
        result["ready"] = _run_locally(files, process_id, scenario)["ready"]
    return result
