"""The script engine every Inkless workflow runs with: designer code in the sandbox, services in here.

SpiffWorkflow 3.2.0 runs every script and expression with plain ``exec``/``eval`` and the real builtins
(see docs/spiffworkflow-3.2.md, section 4), so anyone who can deploy a diagram could run arbitrary code on
the server. Here instead:

* scripts, conditions, pre/post scripts, timer and DMN expressions (everything SpiffWorkflow hands to
  the environment's ``evaluate``/``execute``) and instruction templates (``render``) run in a worker
  process with hard CPU, memory and result-size limits (engine/isolation.py), under RestrictedPython
  and a soft deadline (engine/restricted.py). Refused or broken text is reported before any worker
  is involved;
* the values of timer expressions are held to the platform's horizon before SpiffWorkflow computes
  with them (engine/horizon.py);
* service tasks stay in this process (they touch the database) and dispatch to registered Python
  callables, reporting failures with their own message.

No Flask or SQLAlchemy here: the engine layer must stay importable from workers and tests on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException

from . import horizon, isolation, restricted
from .errors import ScriptError, ScriptForbidden, ScriptLimit, ScriptMemory, ScriptTimeout
from .restricted import check_script, describe

__all__ = [
    "SandboxEnvironment",
    "SandboxScriptEngine",
    "ScriptError",
    "ScriptForbidden",
    "ScriptLimit",
    "ScriptMemory",
    "ScriptTimeout",
    "check_script",
    "make_script_engine",
]


class SandboxEnvironment(TaskDataEnvironment):
    """A TaskDataEnvironment that runs designer code in the worker pool.

    ``helpers`` are callables (or constants) visible to every script and condition; they run in this
    process, called by name from the worker with data arguments, so they must be written with untrusted
    callers in mind. ``services`` map a service-task operator id to
    ``fn(params: dict, task_data: dict) -> JSON-serialisable``. ``pool`` defaults to this process's
    shared pool for workers of ``memory_limit`` bytes.
    """

    def __init__(
        self,
        helpers: dict | None = None,
        services: dict | None = None,
        time_limit: float = 2.0,
        memory_limit: int = isolation.DEFAULT_MEMORY,
        result_limit: int = isolation.DEFAULT_RESULT,
        pool: isolation.WorkerPool | None = None,
    ):
        helpers = dict(helpers or {})
        for name in helpers:
            # Restricted code cannot even name an identifier starting with "_", so such a helper would be
            # dead weight; worse, it could shadow one of the guards.
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"invalid helper name {name!r}")
        self.helpers = helpers
        self.services = dict(services or {})
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.result_limit = result_limit
        self._pool = pool
        # Constants are sent along as data; only callables are called back by name.
        self._callables = {name: value for name, value in helpers.items() if callable(value)}
        self._constants = {name: value for name, value in helpers.items() if not callable(value)}
        # self.globals drives TaskDataEnvironment's overwrite check, so it names everything reserved.
        super().__init__(environment_globals={**helpers, **dict.fromkeys(restricted.RESERVED)})

    @property
    def pool(self) -> isolation.WorkerPool:
        if self._pool is None:
            self._pool = isolation.shared_pool(self.memory_limit)
        return self._pool

    # SpiffWorkflow's TaskDataEnvironment contract ------------------------------------------------

    def evaluate(self, expression, context, external_context=None):
        restricted.compiled(expression, "eval")  # refusals and syntax errors need no worker
        # Task data comes from forms and must never replace the builtins or guards (the worker puts
        # those last); data does shadow helpers in an expression, as it always did.
        data = {k: v for k, v in context.items() if k not in restricted.RESERVED}
        return self._call("eval", expression, data, external_context)["ok"]

    def execute(self, script, context, external_context=None):
        restricted.compiled(script, "exec")
        self.check_for_overwrite(context, external_context or {})
        reply = self._call("exec", script, context, external_context)
        # The task data dict itself is updated: SpiffWorkflow and callers hold on to it.
        context.clear()
        context.update(reply["data"])
        return True

    def render(self, template: str, context: Mapping[str, Any]) -> str:
        """An instruction template (Jinja, sandboxed) rendered over task data, in a worker."""
        return self._call("render", template, dict(context), None)["ok"]

    def call_service(self, context, operation_name, operation_params):
        service = self.services.get(operation_name)
        if service is None:
            raise ScriptError(f'unknown service "{operation_name}"')
        # SpiffWorkflow hands over {'name': {'value': <evaluated>, 'type': 'str'}}; services want plain values.
        params = {
            name: (param["value"] if isinstance(param, Mapping) and "value" in param else param)
            for name, param in (operation_params or {}).items()
        }
        try:
            result = service(params, context)
        except ScriptError:
            raise
        except Exception as err:
            raise ScriptError(f'service "{operation_name}" failed: {describe(err, with_type=False)}') from err
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as err:
            raise ScriptError(f'service "{operation_name}" returned a value that is not JSON: {err}') from err

    # The worker ----------------------------------------------------------------------------------

    def _call(self, op: str, source: str, data: dict, external_context: dict | None) -> dict:
        external = {**self._constants, **(external_context or {})}
        request = {"op": op, "source": source, "data": data, "external": external,
                   "helpers": list(self._callables)}
        try:
            reply = self.pool.call(request, self._callables, self.time_limit, self.result_limit)
        except (TypeError, ValueError) as err:
            raise ScriptError(f"the task data cannot be handed to the script: {err}") from None
        except RecursionError:
            raise ScriptLimit("the task data is nested too deeply") from None
        if "error" in reply:
            raise isolation.exception_from_wire(reply["error"])
        return reply


# ------------------------------------------------------------------------------------------- engine


class SandboxScriptEngine(PythonScriptEngine):
    """PythonScriptEngine with SandboxEnvironment and error reporting that keeps the original message.

    Differences from 3.2.0's engine: service failures no longer turn into ``NameError: 'script'`` (doc
    pitfall P8); expression errors say what went wrong instead of only "Error evaluating expression";
    ScriptError line numbers are used; non-str exception arguments (``KeyError(5)``) no longer crash the
    reporter; a timer expression's value is checked against the horizon before SpiffWorkflow uses it.
    The original exception stays reachable via ``__cause__``/``__context__``.
    """

    def __init__(self, environment: SandboxEnvironment | None = None):
        super().__init__(environment=environment or SandboxEnvironment())

    def evaluate(self, task, expression, external_context=None):
        try:
            value = self.environment.evaluate(expression, task.data, external_context)
            horizon.check_timer_result(task.task_spec, expression, value)
            return value
        except SpiffWorkflowException as err:
            err.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as err:
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}': {describe(err)}",
                task=task,
                exception=err,
                line_number=getattr(err, "line", None),
            ) from err

    def call_service(self, task, **kwargs):
        try:
            return self.environment.call_service(task.data, **kwargs)
        except SpiffWorkflowException as err:
            err.add_note(f"Error calling service '{kwargs.get('operation_name')}'")
            raise
        except Exception as err:
            raise WorkflowTaskException(describe(err), task=task, exception=err) from err

    def create_task_exec_exception(self, task, script, err):
        if isinstance(err, SpiffWorkflowException):
            return super().create_task_exec_exception(task, script, err)
        line_number, error_line = self.get_error_line_number_and_content(script, err)
        return WorkflowTaskException(
            describe(err), task=task, exception=err, line_number=line_number, error_line=error_line
        )

    def get_error_line_number_and_content(self, script, err):
        if isinstance(err, SyntaxError):
            line_number = err.lineno or 0
        else:
            # Errors from a worker carry the line they were raised on.
            line_number = getattr(err, "line", None) or restricted.script_line(err.__traceback__) or 0
        lines = script.splitlines() if isinstance(script, str) else []
        error_line = lines[line_number - 1] if 0 < line_number <= len(lines) else ""
        return line_number, error_line


def make_script_engine(helpers=None, services=None, time_limit: float = 2.0,
                       memory_limit: int = isolation.DEFAULT_MEMORY,
                       result_limit: int = isolation.DEFAULT_RESULT,
                       pool: isolation.WorkerPool | None = None) -> SandboxScriptEngine:
    """The script engine every Inkless workflow runs with (reattach it after each deserialisation)."""
    return SandboxScriptEngine(SandboxEnvironment(helpers=helpers, services=services, time_limit=time_limit,
                                                  memory_limit=memory_limit, result_limit=result_limit, pool=pool))
