"""Time engine.loader.load_bundle on hostile and large files, at a quarter and at the full size.

    python bench/loader_inputs.py [--mib 1]

Each input is built at `--mib` MiB (the upload limit is 5 MiB per file) and at a quarter of it;
the time of the full size over the quarter shows how a cost grows: about 4 is linear, about 16
quadratic. Inputs: a DOCTYPE with entity references (in text, in an attribute, spread over lines,
separated by text), unterminated comments and DOCTYPE openings after a DOCTYPE, and valid-looking
diagrams with many elements (in a chain, side by side, gateways, subprocesses), a long attribute
value, a long script and deep nesting. (December 2026, 1 MiB: exclusive gateways and subprocesses
still grow quadratically, in engine/validation.py; a long script costs ~10 s per MiB in the
sandbox's RestrictedPython compile.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.errors import InvalidDiagram  # noqa: E402
from engine.loader import load_bundle  # noqa: E402
from tests.engine.builders import bpmn, chain, end, flow, parallel, script, start, user, xor  # noqa: E402

DOCTYPE = '<?xml version="1.0"?>\n<!DOCTYPE bpmn:definitions [<!ENTITY a "x">]>\n'


def _body(*elements: str, flows: tuple[str, ...] = ("start", "end")) -> str:
    return bpmn("p", start(), *elements, end(), chain(*flows)).split("?>\n", 1)[1]


def _with_doctype(size: int, unit: str, where: str = "text") -> str:
    body = _body()
    filler = unit * (size // len(unit))
    if where == "attr":
        return DOCTYPE + body.replace('name="p"', f'name="{filler}"', 1)
    return DOCTYPE + body.replace("</bpmn:process>", f"<bpmn:documentation>{filler}</bpmn:documentation></bpmn:process>", 1)


def _many_tasks(size: int) -> str:
    one = len(user("t000000"))
    ids = [f"t{i:06d}" for i in range(size // (one + 120))]
    return bpmn("p", start(), *(user(i) for i in ids), end(), chain("start", *ids, "end"))


def _long_name(size: int) -> str:
    return bpmn("p", start(), user("review", name="名" * (size // 3)), end(), chain("start", "review", "end"))


def _long_script(size: int) -> str:
    code = "x = 1\n" * (size // 6)
    return bpmn("p", start(), script("work", code), end(), chain("start", "work", "end"))


def _fork(size: int, branch, unit: int) -> str:
    """start -> fork -> N branches side by side -> join -> end: wide, not deep."""
    count = size // unit
    body = [start(), parallel("fork"), parallel("join"), end(), flow("start", "fork"), flow("join", "end")]
    for i in range(count):
        body.extend(branch(f"b{i:06d}"))
    return bpmn("p", *body)


def _task_branch(eid: str) -> list[str]:
    return [user(eid), flow("fork", eid), flow(eid, "join")]


def _gateway_branch(eid: str) -> list[str]:
    return [xor(eid, default=f"{eid}_no"), flow("fork", eid), flow(eid, "join", "x == 1", fid=f"{eid}_yes"),
            flow(eid, "join", fid=f"{eid}_no")]


def _subprocess_branch(eid: str) -> list[str]:
    inner = start(f"{eid}_s") + end(f"{eid}_e") + flow(f"{eid}_s", f"{eid}_e")
    return [f'<bpmn:subProcess id="{eid}">{inner}</bpmn:subProcess>\n', flow("fork", eid), flow(eid, "join")]


def _deep(size: int) -> str:
    depth = size // 40
    nested = "<bpmn:documentation>" + "<a>" * depth + "</a>" * depth + "</bpmn:documentation>"
    return bpmn("p", start(), end(), chain("start", "end")).replace("</bpmn:process>", nested + "</bpmn:process>", 1)


INPUTS = {
    "doctype + &a; in text": lambda n: _with_doctype(n, "&a;"),
    "doctype + &a; in an attribute": lambda n: _with_doctype(n, "&a;", "attr"),
    "doctype + &a;x (no runs)": lambda n: _with_doctype(n, "&a;x"),
    "doctype + &a; one per line": lambda n: _with_doctype(n, "&a;\n"),
    "doctype + unterminated <!--": lambda n: DOCTYPE + "<!--" * (n // 4) + _body(),
    "doctype + <!DOCTYPE [ openings": lambda n: _with_doctype(n, "<!DOCTYPE ["),
    "many user tasks in a chain": _many_tasks,
    "many user tasks side by side": lambda n: _fork(n, _task_branch, 420),
    "many exclusive gateways": lambda n: _fork(n, _gateway_branch, 480),
    "many subprocesses": lambda n: _fork(n, _subprocess_branch, 420),
    "long task name": _long_name,
    "long script": _long_script,
    "deep nesting": _deep,
}


def timed(xml: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        bundle = load_bundle({"b.bpmn": xml.encode()}, services=set())
        verdict = f"loaded {len(bundle.processes)}"
    except InvalidDiagram as e:
        verdict = f"refused: {e.problems[0].message[:60]}"
    return time.perf_counter() - started, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=float, default=1.0)
    args = ap.parse_args()
    full = int(args.mib * 1024 * 1024)
    print(f"{'input':34} {'quarter s':>9} {'full s':>7} {'ratio':>5}  verdict")
    for name, build in INPUTS.items():
        quarter, _ = timed(build(full // 4))
        whole, verdict = timed(build(full))
        print(f"{name:34} {quarter:9.3f} {whole:7.3f} {whole / max(quarter, 1e-6):5.1f}  {verdict}")


if __name__ == "__main__":
    main()
