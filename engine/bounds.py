"""What task data may hold: how deep it nests and which values it carries.

Checked where data enters (the API's JSON bodies, service/bounds.py) and where the engine stores it
(engine/codec.py), so nothing gets in that cannot be written, or read back:
- depth: SpiffWorkflow copies, compares and restores task data recursively in Python (DeepMerge,
  the serializer's `restore`), so data nested near the interpreter's recursion limit would be
  written once and then never load again;
- text: PostgreSQL refuses NUL characters in text and JSON, and no database stores a lone UTF-16
  surrogate (what a JSON string "\\ud800" decodes to);
- numbers: NaN and infinity are not JSON (PostgreSQL refuses them in JSON columns).
The walk is iterative, so a value nested 100 000 deep costs MAX_DEPTH steps, not a RecursionError.
"""
from __future__ import annotations

import math

from .errors import N_, DataProblem

MAX_DEPTH = 32
TOO_DEEP = N_("is nested more than %(limit)s levels deep")


def problem(value, at: str = "") -> DataProblem | None:
    """The first thing in `value` that task data must not hold, or None."""
    # Entries: (value, parent entry, key, depth); a path is built only for the problem found.
    stack = [(value, None, at, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        entry = pop()
        node = entry[0]
        kind = type(node)
        if kind in _PLAIN:
            continue
        if kind is str or isinstance(node, str):
            if not _storable(node):
                return _located(entry, N_("contains a character that cannot be stored (NUL or a lone surrogate)"))
        elif kind is float or isinstance(node, float):
            if not math.isfinite(node):
                return _located(entry, N_("is not a finite number"))
        elif kind is dict or isinstance(node, dict):
            depth = entry[3] + 1
            if depth > MAX_DEPTH:
                return _located(entry, TOO_DEEP, limit=MAX_DEPTH)
            for key, item in node.items():
                if type(key) is str and not _storable(key):
                    return _located((key, entry, key, depth),
                                    N_("has a key with a character that cannot be stored (NUL or a lone surrogate)"))
                if type(item) not in _PLAIN:
                    push((item, entry, key, depth))
        elif isinstance(node, list | tuple | set | frozenset):
            depth = entry[3] + 1
            if depth > MAX_DEPTH:
                return _located(entry, TOO_DEEP, limit=MAX_DEPTH)
            for index, item in enumerate(node):
                if type(item) not in _PLAIN:
                    push((item, entry, index, depth))
    return None


_PLAIN = frozenset({int, bool, type(None)})


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _located(entry, template: str, **params) -> DataProblem:
    return DataProblem(path_of(entry), template, params)


# A problem deep down is named by its first levels: enough to find it, short enough to read.
_PATH_SEGMENTS = 6


def path_of(entry) -> str:
    """`data.items[2].name` for an entry of the walk (the root's key is the prefix given; "" for
    the root itself)."""
    segments = []
    while entry[1] is not None:
        _node, parent, key, _depth = entry
        is_index = isinstance(key, int) and not isinstance(parent[0], dict)
        segments.append(f"[{key}]" if is_index else f".{_printable(str(key))}")
        entry = parent
    segments.reverse()
    if len(segments) > _PATH_SEGMENTS:
        segments = [*segments[:_PATH_SEGMENTS], "…"]
    return (entry[2] + "".join(segments)).lstrip(".")


def _printable(key: str) -> str:
    return "".join(c if c.isprintable() and _storable(c) else "?" for c in key)[:64]
