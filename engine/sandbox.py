"""Restricted execution of BPMN scripts, conditions and service tasks.

SpiffWorkflow 3.2.0 runs every script and expression with plain ``exec``/``eval`` and the real builtins
(see docs/spiffworkflow-3.2.md, section 4), so anyone who can deploy a diagram could run arbitrary code on
the server. This module replaces that with:

* RestrictedPython compilation (cached per source text) under a slightly stricter policy than the default,
  so that imports, dunder access, ``exec``/``eval`` and class definitions are refused *before* anything runs;
* a small whitelist of builtins plus the helper functions the application registers; those helpers are
  the only way for a script to reach anything outside its own task data;
* a wall-clock limit enforced with a per-thread trace function, because requests run in Flask's worker
  threads where ``signal.alarm`` is unavailable;
* service tasks that dispatch to registered Python callables and report failures with their own message.

No Flask or SQLAlchemy here: the engine layer must stay importable from workers and tests on its own.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import operator
import random
import re
import sys
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from RestrictedPython import (
    PrintCollector,
    RestrictingNodeTransformer,
    compile_restricted_eval,
    compile_restricted_exec,
    limited_builtins,
    safe_builtins,
    utility_builtins,
)
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException

__all__ = [
    "SandboxEnvironment",
    "SandboxScriptEngine",
    "ScriptError",
    "ScriptForbidden",
    "ScriptTimeout",
    "check_script",
    "make_script_engine",
]

# SpiffWorkflow's error reporter looks for frames from this file name to find the failing line,
# so sandboxed code must keep the name ``exec`` would have given it.
_FILENAME = "<string>"
_RANGE_LIMIT = 1_000_000
_LOOP_MARKER = "_loop_"
_MODES = ("exec", "eval")


# --------------------------------------------------------------------------------------------- errors


class ScriptError(Exception):
    """A script, condition or service call failed in a controlled way."""

    def __init__(self, message: str, line: int | None = None):
        # args[0] must stay a str: PythonScriptEngine.create_task_exec_exception concatenates it.
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


class ScriptTimeout(ScriptError):
    """The script ran longer than the environment's time limit."""


class ScriptForbidden(ScriptError):
    """The restricted compiler refused the source (import, dunder access, exec, ...)."""


class _Deadline(BaseException):
    """Raised from the trace function when time is up.

    A BaseException so that ``except Exception:`` inside a script cannot swallow it: once a trace function
    raises, CPython uninstalls it, so a swallowed timeout would leave the loop running unchecked forever.
    The policy below refuses the remaining ways to catch it (bare ``except:``, control flow in ``finally``)
    and the builtins do not expose ``BaseException`` or its other subclasses.
    """


# ------------------------------------------------------------------------------------------ compiling


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus the refusals this sandbox relies on."""

    def visit_Import(self, node: ast.AST) -> ast.AST:
        # The default policy compiles imports into __import__ calls that fail only at run time;
        # refusing them here gives authors a deploy-time message instead.
        self.error(node, "import is not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.AST) -> ast.AST:
        # Business scripts do not need classes, and a class could implement __exit__ to swallow the timeout.
        self.error(node, "class definitions are not allowed")
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        node = super().visit_While(node)
        # CPython 3.11 compiles ``while True: pass`` to a jump onto itself, which emits no line events, so
        # the trace function would never see the loop again. A name load at the top of the body makes the
        # backward jump land on an earlier instruction, and backward jumps always emit a line event.
        marker = ast.Expr(ast.Name(_LOOP_MARKER, ast.Load()))
        anchor = node.body[0]
        for part in (marker, marker.value):
            ast.copy_location(part, anchor)
        node.body.insert(0, marker)
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        for handler in node.handlers:
            if handler.type is None:
                self.error(handler, "a bare 'except:' is not allowed; name the exception, e.g. 'except ValueError:'")
        # break/continue/return in a finally block discard the exception in flight, timeout included.
        for stmt in node.finalbody:
            for sub in _walk_without_nested_functions(stmt):
                if isinstance(sub, (ast.Return, ast.Break, ast.Continue)):
                    keyword = type(sub).__name__.lower()
                    self.error(sub, f"'{keyword}' inside 'finally' is not allowed")
        return super().visit_Try(node)


def _walk_without_nested_functions(node: ast.AST):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.append(child)


class _Compiled(NamedTuple):
    code: types.CodeType | None
    problems: tuple[str, ...]
    line: int | None
    forbidden: bool  # False for plain syntax errors: those are mistakes, not refusals


_LINE_PREFIX = re.compile(r"^Line (\d+|None): ")


@functools.lru_cache(maxsize=2048)
def _compile(source: str, mode: str) -> _Compiled:
    if mode == "eval":
        # BPMN XML often puts conditions on their own indented line; whitespace around an expression is meaningless.
        source = source.strip()
    try:
        tree = ast.parse(source, filename=_FILENAME, mode=mode)
    except SyntaxError as err:
        line = err.lineno
        text = f"Line {line}: {type(err).__name__}: {err.msg}" if line else f"{type(err).__name__}: {err.msg}"
        return _Compiled(None, (text,), line, False)
    except (ValueError, RecursionError, MemoryError) as err:  # NUL bytes, absurd nesting
        return _Compiled(None, (f"cannot compile: {err}",), None, False)
    compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    try:
        result = compiler(tree, filename=_FILENAME, policy=_Policy)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return _Compiled(None, (f"cannot compile: {err}",), getattr(err, "lineno", None), False)
    if result.errors:
        match = _LINE_PREFIX.match(result.errors[0])
        line = int(match.group(1)) if match and match.group(1) != "None" else None
        return _Compiled(None, tuple(result.errors), line, True)
    return _Compiled(result.code, (), None, False)


def _compiled_or_raise(source: str, mode: str) -> types.CodeType:
    if not isinstance(source, str):
        raise ScriptError(f"expected script text, got {type(source).__name__}")
    compiled = _compile(source, mode)
    if compiled.code is None:
        # The line number goes into .line, so the message does not need RestrictedPython's "Line n:" prefix.
        message = "; ".join(_LINE_PREFIX.sub("", problem) for problem in compiled.problems)
        raise (ScriptForbidden if compiled.forbidden else ScriptError)(message, compiled.line)
    return compiled.code


def check_script(source: str, mode: str = "exec") -> list[str]:
    """Deploy-time check: human-readable problems, or [] when the text compiles in the sandbox.

    ``mode`` is ``"exec"`` for scripts and ``"eval"`` for conditions and other expressions.
    Never raises for bad input.
    """
    if mode not in _MODES:
        return [f"unknown mode {mode!r}; expected 'exec' or 'eval'"]
    if not isinstance(source, str):
        return [f"expected script text, got {type(source).__name__}"]
    try:
        return list(_compile(source, mode).problems)
    except Exception as err:  # the promise is "never raises"; report instead
        return [f"cannot compile: {err}"]


# ------------------------------------------------------------------------------------ runtime guards


def _guarded_getattr(obj: Any, name: str) -> Any:
    # type.mro() would hand out BaseException, the one class that catches the timeout.
    if name == "mro":
        raise AttributeError('"mro" is a restricted name')
    # The raising variant: RestrictedPython's default safer_getattr turns a misspelt ``x.atribute`` into None.
    return safer_getattr_raise(obj, name)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def _apply(func: Callable, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    try:
        return _INPLACE_OPERATORS[op](target, value)
    except KeyError:
        raise ScriptForbidden(f"operator {op} is not allowed") from None


def _capped_range(*args: int) -> range:
    result = range(*args)
    try:
        size = len(result)
    except OverflowError:
        size = _RANGE_LIMIT + 1
    if size > _RANGE_LIMIT:
        raise ValueError(f"range() of more than {_RANGE_LIMIT:,} items is not allowed")
    return result


# Removed from the RestrictedPython defaults: class machinery (classes are refused anyway), guarded
# setattr/delattr (useless without classes), id() (leaks addresses), the BaseException family (would catch
# the timeout), the shared ``random`` module (a script could reseed the whole process) and Zope leftovers.
_DROPPED_BUILTINS = (
    "__build_class__",
    "_getattr_",
    "setattr",
    "delattr",
    "id",
    "BaseException",
    "GeneratorExit",
    "KeyboardInterrupt",
    "SystemExit",
    "random",
    "whrandom",
    "DateTime",
)

_EXTRA_BUILTINS: dict[str, Any] = {
    "len": len,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "any": any,
    "all": all,
    "enumerate": enumerate,
    "zip": zip,
    "list": list,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "tuple": tuple,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "round": round,
    "abs": abs,
    "isinstance": isinstance,
    "range": _capped_range,
    "map": map,
    "filter": filter,
    "reversed": reversed,
}


def _make_builtins() -> dict[str, Any]:
    builtins: dict[str, Any] = {}
    builtins.update(safe_builtins)
    builtins.update(limited_builtins)
    builtins.update(utility_builtins)
    for name in _DROPPED_BUILTINS:
        builtins.pop(name, None)
    builtins.update(_EXTRA_BUILTINS)
    # An instance rather than the module: its state is private to this environment.
    builtins["random"] = random.Random()
    return builtins


_GUARDS: dict[str, Any] = {
    "_getattr_": _guarded_getattr,
    "_getitem_": _guarded_getitem,
    "_getiter_": iter,
    # dicts and lists (all that task data holds) are written directly; anything else is read-only.
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_print_": PrintCollector,
    "_apply_": _apply,
    _LOOP_MARKER: None,
}


def _script_line(tb: types.TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# -------------------------------------------------------------------------------------- environment


class SandboxEnvironment(TaskDataEnvironment):
    """A TaskDataEnvironment that compiles with RestrictedPython and enforces a time limit.

    ``helpers`` are callables (or constants) visible to every script and condition; they run unrestricted,
    so they must be written with untrusted callers in mind. ``services`` map a service-task operator id to
    ``fn(params: dict, task_data: dict) -> JSON-serialisable``.
    """

    def __init__(
        self,
        helpers: dict | None = None,
        services: dict | None = None,
        time_limit: float = 2.0,
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
        self._reserved = {"__builtins__": _make_builtins(), **_GUARDS}
        builtins = self._reserved["__builtins__"]
        self._sandbox_objects = (builtins["string"], builtins["random"])
        # self.globals drives TaskDataEnvironment's overwrite check and clean-up, so it holds both.
        super().__init__(environment_globals={**helpers, **self._reserved})

    # SpiffWorkflow's TaskDataEnvironment contract ------------------------------------------------

    def evaluate(self, expression, context, external_context=None):
        code = _compiled_or_raise(expression, "eval")
        namespace = copy.copy(self.globals)
        self._prepare_context(context)
        namespace.update(external_context or {})
        namespace.update(context)
        # Task data comes from forms and must never replace the builtins or guards.
        namespace.update(self._reserved)
        return self._run(code, namespace, eval)

    def execute(self, script, context, external_context=None):
        code = _compiled_or_raise(script, "exec")
        self.check_for_overwrite(context, external_context or {})
        namespace = copy.copy(self.globals)
        self._prepare_context(context)
        namespace.update(external_context or {})
        # As in TaskDataEnvironment, the task data dict itself is the script's global namespace, so every
        # assignment lands in the task data; the clean-up below removes what is not data.
        context.update(namespace)
        try:
            self._run(code, context, exec)
        finally:
            self._remove_globals_and_functions_from_context(context, external_context)
        return True

    def _remove_globals_and_functions_from_context(self, context, external_context=None):
        super()._remove_globals_and_functions_from_context(context, external_context)
        # ``m = math`` would otherwise leave a module (not callable, so kept by the base class) in task data.
        for key in list(context):
            value = context[key]
            if isinstance(value, types.ModuleType) or any(value is obj for obj in self._sandbox_objects):
                context.pop(key)

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
            raise ScriptError(f'service "{operation_name}" failed: {_describe(err, with_type=False)}') from err
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as err:
            raise ScriptError(f'service "{operation_name}" returned a value that is not JSON: {err}') from err

    # Time limit ------------------------------------------------------------------------------------

    def _run(self, code: types.CodeType, namespace: dict, runner: Callable) -> Any:
        if not self.time_limit or self.time_limit <= 0:
            return runner(code, namespace)
        deadline = time.monotonic() + self.time_limit

        def on_line(frame, event, arg):
            if time.monotonic() > deadline:
                raise _Deadline
            return on_line

        def on_call(frame, event, arg):
            # Only sandboxed frames get line tracing: helper code is trusted, tracing it would cost time,
            # and interrupting it halfway (say, inside a DB transaction) is worse than letting it finish.
            if frame.f_code.co_filename != _FILENAME:
                return None
            if time.monotonic() > deadline:
                raise _Deadline
            return on_line

        # sys.settrace is per thread, which is exactly the scope we want; keep whatever tracer
        # (coverage, a debugger, an outer sandbox call) was there before.
        previous = sys.gettrace()
        sys.settrace(on_call)
        try:
            return runner(code, namespace)
        except _Deadline as stop:
            raise ScriptTimeout(
                f"script exceeded the time limit of {self.time_limit:g} s", _script_line(stop.__traceback__)
            ) from None
        finally:
            sys.settrace(previous)


# ------------------------------------------------------------------------------------------- engine


def _describe(err: BaseException, with_type: bool = True) -> str:
    text = err.message if isinstance(err, ScriptError) else str(err)
    if isinstance(err, KeyError) and err.args:
        text = f"missing key {err.args[0]!r}"
    return f"{type(err).__name__}: {text}" if with_type else text


class SandboxScriptEngine(PythonScriptEngine):
    """PythonScriptEngine with SandboxEnvironment and error reporting that keeps the original message.

    Differences from 3.2.0's engine: service failures no longer turn into ``NameError: 'script'`` (doc
    pitfall P8); expression errors say what went wrong instead of only "Error evaluating expression";
    ScriptError line numbers are used; non-str exception arguments (``KeyError(5)``) no longer crash the
    reporter. The original exception stays reachable via ``__cause__``/``__context__``.
    """

    def __init__(self, environment: SandboxEnvironment | None = None):
        super().__init__(environment=environment or SandboxEnvironment())

    def evaluate(self, task, expression, external_context=None):
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException as err:
            err.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as err:
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}': {_describe(err)}",
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
            raise WorkflowTaskException(_describe(err), task=task, exception=err) from err

    def create_task_exec_exception(self, task, script, err):
        if isinstance(err, SpiffWorkflowException):
            return super().create_task_exec_exception(task, script, err)
        line_number, error_line = self.get_error_line_number_and_content(script, err)
        return WorkflowTaskException(
            _describe(err), task=task, exception=err, line_number=line_number, error_line=error_line
        )

    def get_error_line_number_and_content(self, script, err):
        if isinstance(err, ScriptError):
            line_number = err.line or 0
        elif isinstance(err, SyntaxError):
            line_number = err.lineno or 0
        else:
            line_number = _script_line(err.__traceback__) or 0
        lines = script.splitlines() if isinstance(script, str) else []
        error_line = lines[line_number - 1] if 0 < line_number <= len(lines) else ""
        return line_number, error_line


def make_script_engine(helpers=None, services=None, time_limit: float = 2.0) -> SandboxScriptEngine:
    """The script engine every Inkless workflow runs with (reattach it after each deserialisation)."""
    return SandboxScriptEngine(SandboxEnvironment(helpers=helpers, services=services, time_limit=time_limit))
