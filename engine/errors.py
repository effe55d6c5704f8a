"""Errors the engine raises. Each names what the user can act on: a file, a BPMN element, a task."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DiagramProblem:
    """One thing wrong with an uploaded diagram, located as precisely as the parser allows."""

    file: str | None
    element: str | None
    message: str
    line: int | None = None
    # The untranslated message template and its parameters, so the service can say it in the
    # user's language (the template is the gettext msgid, marked with N_ where it is written).
    template: str | None = None
    params: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, file: str | None, element: str | None, template: str, line: int | None = None, **params):
        return cls(file, element, template % params if params else template, line, template, params)

    def as_dict(self) -> dict:
        return {"file": self.file, "element": self.element, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class DataProblem:
    """What is wrong with one value of task data and where it is (`data.items[2]`); see engine/bounds.py."""

    field: str
    template: str
    params: dict = field(default_factory=dict)
    # "size" problems are 413 in the API, "value" problems 422.
    kind: str = "value"

    @property
    def message(self) -> str:
        return self.template % self.params if self.params else self.template


def N_(template: str) -> str:
    """Marks a message template for translation extraction; translation happens in the service."""
    return template


class EngineError(Exception):
    """Base class: an engine call could not be carried out."""


@dataclass
class InvalidDiagram(EngineError):
    problems: list[DiagramProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(
            f"{p.file or '?'}:{p.element or (p.line and f'line {p.line}') or '-'}: {p.message}" for p in self.problems
        )


class TaskNotFound(EngineError):
    pass


class TaskNotReady(EngineError):
    """The task exists but cannot be completed now (already completed, cancelled, not a user task)."""


class MessageNotCaught(EngineError):
    """Nobody in this instance waits for the message."""


@dataclass
class Incident(EngineError):
    """A step failed at run time (script error, sandbox refusal, timeout, failing service).

    The instance keeps its last good state; the incident is recorded so an admin can retry."""

    element: str | None
    message: str
    kind: str = "script"
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.element}: {self.message}"

    def as_dict(self) -> dict:
        return {"element": self.element, "kind": self.kind, "line": self.line, "message": self.message}


@dataclass
class DataRejected(EngineError):
    """Task data the engine will not store (too deep, too big, or holding what no database keeps)."""

    problem: DataProblem

    def __str__(self) -> str:
        return f"{self.problem.field}: {self.problem.message}"


# -- designer code (scripts, conditions, expressions, templates) -----------------------------------


class ScriptError(Exception):
    """A script, condition, expression or template failed in a controlled way.

    `kind` says which guard stopped it; the runtime copies it into the incident. Not an
    EngineError: it happens inside a step and becomes an Incident, it is not a refused call."""

    kind = "script"

    def __init__(self, message: str, line: int | None = None):
        # args[0] must stay a str: PythonScriptEngine.create_task_exec_exception concatenates it.
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


class ScriptTimeout(ScriptError):
    """The code ran past its time limit (wall clock or CPU)."""

    kind = "timeout"


class ScriptForbidden(ScriptError):
    """The restricted compiler refused the source (import, dunder access, exec, ...)."""

    kind = "forbidden"


class ScriptMemory(ScriptError):
    """The code tried to use more memory than its worker process may hold."""

    kind = "memory"


class ScriptLimit(ScriptError):
    """A bound other than time or memory: a result too large to keep, a timer beyond the horizon,
    call activities nested too deep."""

    kind = "limit"
