"""Designer code under RestrictedPython and Jinja's sandbox: compile, check, run with a soft deadline.

This is the *first* line of defence and works in whatever process calls it: RestrictedPython
refuses imports, dunder access, ``exec``/``eval`` and class definitions before anything runs, the
builtins are a short whitelist, and a per-thread trace function stops Python-level loops at the
time limit. It cannot stop work done inside one C call (``10**10**10``, ``'x' * 10**10``) nor cap
memory; engine/isolation.py runs this module in worker processes with hard limits for that.

Imports neither SpiffWorkflow nor anything of the service, so a worker process starts quickly.
"""

from __future__ import annotations

import ast
import builtins as _builtins
import functools
import math
import operator
import random
import re
import string
import sys
import time
import types
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import SandboxedEnvironment
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

from .errors import N_, ScriptError, ScriptForbidden, ScriptTimeout

__all__ = ["Deadline", "check_script", "compiled", "describe", "namespace_for", "render", "run",
           "strip_non_data", "template_problems"]

# SpiffWorkflow's error reporter looks for frames from this file name to find the failing line,
# so sandboxed code must keep the name ``exec`` would have given it. Jinja names its compiled
# templates "<template>"; both are traced, nothing else is.
FILENAME = "<string>"
_TEMPLATE_FILENAME = "<template>"
_TRACED = (FILENAME, _TEMPLATE_FILENAME)
RANGE_LIMIT = 1_000_000
_LOOP_MARKER = "_loop_"
MODES = ("exec", "eval")


class _Deadline(BaseException):
    """Raised from the trace function when time is up.

    A BaseException so that ``except Exception:`` inside a script cannot swallow it: once a trace function
    raises, CPython uninstalls it, so a swallowed timeout would leave the loop running unchecked forever.
    The policy below refuses the remaining ways to catch it (bare ``except:``, control flow in ``finally``)
    and the builtins do not expose ``BaseException`` or its other subclasses. In a worker process the
    parent's wall-clock kill is the guarantee; this only makes the common case cheap and precise.
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
    uses_random: bool = False


_LINE_PREFIX = re.compile(r"^Line (\d+|None): ")


def _names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


@functools.lru_cache(maxsize=2048)
def _compile(source: str, mode: str) -> _Compiled:
    if mode == "eval":
        # BPMN XML often puts conditions on their own indented line; whitespace around an expression is meaningless.
        source = source.strip()
    try:
        tree = ast.parse(source, filename=FILENAME, mode=mode)
    except SyntaxError as err:
        line = err.lineno
        text = f"Line {line}: {type(err).__name__}: {err.msg}" if line else f"{type(err).__name__}: {err.msg}"
        return _Compiled(None, (text,), line, False)
    except (ValueError, RecursionError, MemoryError) as err:  # NUL bytes, absurd nesting
        return _Compiled(None, (f"cannot compile: {err}",), None, False)
    compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    try:
        result = compiler(tree, filename=FILENAME, policy=_Policy)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return _Compiled(None, (f"cannot compile: {err}",), getattr(err, "lineno", None), False)
    if result.errors:
        match = _LINE_PREFIX.match(result.errors[0])
        line = int(match.group(1)) if match and match.group(1) != "None" else None
        return _Compiled(None, tuple(result.errors), line, True)
    return _Compiled(result.code, (), None, False, "random" in set(_names(result.code)))


def compiled(source: str, mode: str) -> _Compiled:
    """The restricted code object for `source`, or raise the ScriptError saying why there is none."""
    if not isinstance(source, str):
        raise ScriptError(f"expected script text, got {type(source).__name__}")
    if mode not in MODES:
        raise ScriptError(f"unknown mode {mode!r}; expected 'exec' or 'eval'")
    result = _compile(source, mode)
    if result.code is None:
        # The line number goes into .line, so the message does not need RestrictedPython's "Line n:" prefix.
        message = "; ".join(_LINE_PREFIX.sub("", problem) for problem in result.problems)
        raise (ScriptForbidden if result.forbidden else ScriptError)(message, result.line)
    return result


def check_script(source: str, mode: str = "exec") -> list[str]:
    """Deploy-time check: human-readable problems, or [] when the text compiles in the sandbox.

    ``mode`` is ``"exec"`` for scripts and ``"eval"`` for conditions and other expressions.
    Never raises for bad input.
    """
    if mode not in MODES:
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
        size = RANGE_LIMIT + 1
    if size > RANGE_LIMIT:
        raise ValueError(f"range() of more than {RANGE_LIMIT:,} items is not allowed")
    return result


class Named:
    """A callable the sandbox hands out under a name of its own.

    Its repr is just the name: a plain function's repr carries a memory address, and a module's
    (``<module 'math' from '/usr/lib/...'>``) the interpreter's paths."""

    __slots__ = ("_function", "_name")

    def __init__(self, function: Callable, name: str):
        self._function = function
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<function {self._name}>"


class _Module:
    """A read-only view of a module's public names, with a repr that names no file."""

    __slots__ = ("_name", "_members")

    def __init__(self, name: str, members: dict[str, Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", members)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._members[name]
        except KeyError:
            raise AttributeError(f"module '{self._name}' has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"module '{self._name}' is read-only")

    def __dir__(self) -> list[str]:
        return sorted(self._members)

    def __repr__(self) -> str:
        return f"<module '{self._name}'>"


def _public(module: types.ModuleType, *excluded: str) -> dict[str, Any]:
    return {name: getattr(module, name) for name in dir(module) if not name.startswith("_") and name not in excluded}


class _Random(random.Random):
    """One per evaluation: reseeding it (``random.seed(1)``) affects nothing else."""

    def __repr__(self) -> str:
        return "<random.Random>"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _repr(obj: Any) -> str:
    # Functions a script defines itself would still show where the worker's heap lies.
    return _ADDRESS.sub("", _builtins.repr(obj))


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
    "map": map,
    "filter": filter,
    "reversed": reversed,
    "repr": Named(_repr, "repr"),
    "range": Named(_capped_range, "range"),
    "math": _Module("math", _public(math)),
    # RestrictedPython refuses string.Formatter for the same reason: it walks attributes itself.
    "string": _Module("string", _public(string, "Formatter")),
}


def _base_builtins() -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(safe_builtins)
    out.update(limited_builtins)
    out.update(utility_builtins)
    for name in _DROPPED_BUILTINS:
        out.pop(name, None)
    for name in ("same_type", "test", "reorder"):
        if name in out:
            out[name] = Named(out[name], name)
    out.update(_EXTRA_BUILTINS)
    return out


_BUILTINS = _base_builtins()
SANDBOX_OBJECTS = (_BUILTINS["math"], _BUILTINS["string"])

GUARDS: dict[str, Any] = {
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
RESERVED = frozenset(["__builtins__", *GUARDS])


def namespace_for(code: _Compiled) -> dict[str, Any]:
    """Builtins and guards for one evaluation; `random`, when the code uses it, is its own.

    Otherwise the builtins dict is shared: restricted code cannot name ``__builtins__``, so it
    cannot change it."""
    names = _BUILTINS
    if code.uses_random:
        names = {**_BUILTINS, "random": _Random()}
    return {"__builtins__": names, **GUARDS}


def strip_non_data(context: dict, keep_out: Iterable[str] = ()) -> None:
    """Remove what is not task data after a script ran: builtins and guards, helpers and external
    context (`keep_out`), callables (as SpiffWorkflow's TaskDataEnvironment does), modules and
    the sandbox's own objects (``m = math`` would otherwise stay behind)."""
    keep_out = set(keep_out)
    for key in list(context):
        value = context[key]
        if (key in RESERVED or key in keep_out or callable(value) or isinstance(value, (types.ModuleType, _Module))
                or isinstance(value, _Random)):
            del context[key]


def script_line(tb: types.TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe(err: BaseException, with_type: bool = True) -> str:
    text = err.message if isinstance(err, ScriptError) else str(err)
    if isinstance(err, KeyError) and err.args:
        text = f"missing key {err.args[0]!r}"
    return f"{type(err).__name__}: {text}" if with_type else text


# -------------------------------------------------------------------------------------- running


class Deadline:
    """When sandboxed code must stop; `pause` takes time spent outside it (a helper the parent
    process runs) off the clock."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.at = time.monotonic() + seconds if seconds and seconds > 0 else None

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() > self.at

    def extend(self, seconds: float) -> None:
        if self.at is not None:
            self.at += seconds


def run(code: types.CodeType, namespace: dict, runner: Callable, deadline: Deadline) -> Any:
    """``runner(code, namespace)`` (exec or eval) with the trace-function deadline."""
    if deadline.at is None:
        return runner(code, namespace)
    return _traced(lambda: runner(code, namespace), deadline)


def _traced(call: Callable[[], Any], deadline: Deadline) -> Any:
    def on_line(frame, event, arg):
        if deadline.passed():
            raise _Deadline
        return on_line

    def on_call(frame, event, arg):
        # Only sandboxed frames get line tracing: helper code is trusted, tracing it would cost time,
        # and interrupting it halfway is worse than letting it finish.
        if frame.f_code.co_filename not in _TRACED:
            return None
        if deadline.passed():
            raise _Deadline
        return on_line

    # sys.settrace is per thread, which is exactly the scope we want; keep whatever tracer
    # (coverage, a debugger, an outer sandbox call) was there before.
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        return call()
    except _Deadline as stop:
        raise ScriptTimeout(f"script exceeded the time limit of {deadline.seconds:g} s",
                            script_line(stop.__traceback__)) from None
    finally:
        sys.settrace(previous)


# ------------------------------------------------------------------------------------ templates

_templates = SandboxedEnvironment(autoescape=False)


def _moment_text(value: Any) -> Any:
    """`{{ occurred_at | moment }}`: an ISO 8601 date and time as people read it,
    `2026年12月3日 09:30` (in the value's own offset); anything else unchanged."""
    import datetime as _dt

    if not isinstance(value, str):
        return value
    try:
        moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"


_templates.filters["moment"] = _moment_text


@functools.lru_cache(maxsize=512)
def _template(source: str):
    """Compiled once per instruction text: compiling costs more than rendering."""
    return _templates.from_string(source)


# Deploy-time bounds on what a template spells out literally (the worker's limits catch the rest).
TEMPLATE_LOOP_LIMIT = 100_000
TEMPLATE_TEXT_LIMIT = 1_000_000
_HUGE_BITS = 100_000


class _TooBig(Exception):
    pass


def _literal_int(node) -> int | None:
    """The value of an integer literal or of ``**``/``*`` over integer literals, if small enough
    to compute (raises _TooBig past that); None for anything else."""
    if isinstance(node, jinja_nodes.Const):
        return node.value if isinstance(node.value, int) and not isinstance(node.value, bool) else None
    if isinstance(node, (jinja_nodes.Pow, jinja_nodes.Mul)):
        left, right = _literal_int(node.left), _literal_int(node.right)
        if left is None or right is None:
            return None
        if isinstance(node, jinja_nodes.Pow):
            if right < 0:
                return None
            if abs(left) > 1 and right * abs(left).bit_length() > _HUGE_BITS:
                raise _TooBig
            return left**right
        if left.bit_length() + right.bit_length() > _HUGE_BITS:
            raise _TooBig
        return left * right
    return None


def _range_size(node) -> int | None:
    if not (isinstance(node, jinja_nodes.Call) and isinstance(node.node, jinja_nodes.Name)
            and node.node.name == "range" and not node.kwargs and 1 <= len(node.args) <= 3):
        return None
    args = [_literal_int(arg) for arg in node.args]
    if None in args:
        return None
    try:
        return len(range(*args))
    except (ValueError, OverflowError):
        return None


def _text_size(node) -> int | None:
    """Characters of ``'x' * n`` over literals."""
    if not isinstance(node, jinja_nodes.Mul):
        return None
    for text, count in ((node.left, node.right), (node.right, node.left)):
        if isinstance(text, jinja_nodes.Const) and isinstance(text.value, str):
            times = _literal_int(count)
            return None if times is None else len(text.value) * times
    return None


def template_problems(source: str) -> list[tuple[str, dict]]:
    """Deploy-time check of an instruction template: (message template, params) per problem.

    Refuses loops that literally repeat more than TEMPLATE_LOOP_LIMIT times in all (``{% for %}``
    over ``range(100000)`` inside another) and literal arithmetic too large to do
    (``{{ 'x' * 1000000000 }}``, ``{{ 9 ** 999999999 }}``). Parses only; evaluates nothing. A
    template that does not parse is not refused: it is shown as written, as it always was."""
    try:
        tree = _templates.parse(source)
    except Exception:  # noqa: BLE001 - TemplateSyntaxError, RecursionError on absurd nesting
        return []
    problems: list[tuple[str, dict]] = []

    def visit(node, repeats: int) -> None:
        try:
            if isinstance(node, jinja_nodes.For):
                size = _range_size(node.iter)
                if size is not None:
                    repeats *= max(size, 1)
                    if repeats > TEMPLATE_LOOP_LIMIT:
                        problems.append((N_("instructions repeat a loop %(count)s times; at most %(limit)s "
                                            "repetitions are allowed"),
                                         {"count": f"{repeats:,}", "limit": f"{TEMPLATE_LOOP_LIMIT:,}"}))
                        return
            if isinstance(node, jinja_nodes.Pow):
                _literal_int(node)  # Jinja folds constants when it compiles: 9**9**9 would hang there
            size = _text_size(node)
            if size is not None and size > TEMPLATE_TEXT_LIMIT:
                problems.append((N_("instructions build a text of %(size)s characters; at most %(limit)s are "
                                    "allowed"), {"size": f"{size:,}", "limit": f"{TEMPLATE_TEXT_LIMIT:,}"}))
                return
        except _TooBig:
            problems.append((N_("instructions compute a number too large to show"), {}))
            return
        for child in node.iter_child_nodes():
            visit(child, repeats)

    try:
        visit(tree, 1)
    except RecursionError:
        problems.append((N_("instructions are nested too deeply"), {}))
    return problems


def render(source: str, data: dict, deadline: Deadline) -> str:
    """Render an instruction template over task data under the deadline."""
    template = _template(source)
    # A mapping rather than **kwargs: task data keys need not be identifiers.
    if deadline.at is None:
        return template.render(data)
    return _traced(lambda: template.render(data), deadline)
