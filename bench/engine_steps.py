"""Engine-only cost of one step as an instance ages (no Flask, no database, no HTTP).

One *step* is what the service does with the engine for one task completion:
load the saved state -> complete the user task `work` -> run the automatic steps (script `tick`,
gateway `again`) -> save the state. It is measured for three ways of saving the state:

  inkless      engine/codec.py: spec by reference, finished history compacted away (keep=12)
  no-compact   engine/codec.py: spec by reference, the whole task tree kept
  stock        SpiffWorkflow's BpmnWorkflowSerializer (serialize_json / deserialize_json) with the
               spec embedded in every document: "save the whole workflow JSON each request"

"History N" means N rounds of bench/loop.bpmn already completed (3 history steps each: work,
tick, again). Every sample starts from the same saved state at history N, so all samples see
exactly that history. All three variants use the same Inkless sandboxed script engine.

    python bench/engine_steps.py [--histories 10,100,300,1000] [--repeats 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402

from engine import codec  # noqa: E402
from engine.loader import load_bundle  # noqa: E402
from engine.runtime import Instance  # noqa: E402
from engine.sandbox import make_script_engine  # noqa: E402

KEEP = 12  # service/config.py keep_history default
VARIANTS = ("inkless", "no-compact", "stock")
_stock = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


class Stalled(Exception):
    """The engine stopped offering the user task (SpiffWorkflow pitfall P9: tree depth > 1000)."""


def load_process():
    bundle = load_bundle({"loop.bpmn": (ROOT / "bench" / "loop.bpmn").read_bytes()}, forms=set(), services=set())
    return bundle.processes["bench_loop"]


def _save(variant: str, instance: Instance) -> str:
    if variant == "inkless":
        return instance.dumps(keep_history=KEEP)
    if variant == "no-compact":
        return codec.dumps(instance.workflow)
    return _stock.serialize_json(instance.workflow)


def _load(variant: str, process, state: str, engine) -> Instance:
    if variant == "stock":
        workflow = _stock.deserialize_json(state)
        workflow.script_engine = engine
        for sub in workflow.subprocesses.values():
            sub.script_engine = engine
        return Instance(process, workflow)
    return Instance.load(process, state, engine)


def _ready_id(instance: Instance) -> str:
    tasks = instance.user_tasks()
    if len(tasks) != 1:
        raise Stalled()
    return tasks[0].id


def build_state(variant: str, process, engine, rounds: int) -> tuple[str, str]:
    """Complete `rounds` rounds in memory (compacting after each, as the service does for
    inkless); return the saved state and the id of the open `work` task."""
    instance = Instance.start(process, engine, {"initiator": "bench"})
    for n in range(rounds):
        try:
            task_id = _ready_id(instance)
        except Stalled:
            raise Stalled(n) from None
        instance.complete(task_id, {"done": False})
        if variant == "inkless":
            codec.compact(instance.workflow, keep=KEEP)
    state = _save(variant, instance)
    # The open task as the service would know it (from its task projection).
    return state, _ready_id(_load(variant, process, state, engine))


def one_step(variant: str, process, engine, state: str, task_id: str) -> tuple[float, float, float, str, float]:
    c0 = time.thread_time()
    t0 = time.perf_counter()
    instance = _load(variant, process, state, engine)
    t1 = time.perf_counter()
    instance.complete(task_id, {"done": False})
    if instance.incidents:
        raise RuntimeError(f"incident: {instance.incidents}")
    t2 = time.perf_counter()
    new_state = _save(variant, instance)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, new_state, time.thread_time() - c0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def measure(variant: str, process, engine, rounds: int, repeats: int) -> dict:
    try:
        state, task_id = build_state(variant, process, engine, rounds)
    except Stalled as e:
        return {"variant": variant, "history": rounds, "stalled_at": e.args[0] if e.args else None}
    for _ in range(min(10, repeats)):  # warm caches (compiled scripts, spec objects)
        one_step(variant, process, engine, state, task_id)
    total, load, run, save, cpu = [], [], [], [], []
    new_state = state
    for _ in range(repeats):
        a, b, c, new_state, used = one_step(variant, process, engine, state, task_id)
        cpu.append(used)
        load.append(a)
        run.append(b)
        save.append(c)
        total.append(a + b + c)
    # Sanity: the saved state after the step still offers `work` (the loop did not stall).
    try:
        _ready_id(_load(variant, process, new_state, engine))
        stalled_after = False
    except Stalled:
        stalled_after = True
    ms = 1000.0
    return {
        "variant": variant,
        "history": rounds,
        "repeats": repeats,
        "median_ms": statistics.median(total) * ms,
        "p90_ms": pct(total, 0.9) * ms,
        "min_ms": min(total) * ms,
        "cpu_median_ms": statistics.median(cpu) * ms,
        "load_ms": statistics.median(load) * ms,
        "complete_run_ms": statistics.median(run) * ms,
        "save_ms": statistics.median(save) * ms,
        "state_bytes": len(state.encode("utf-8")),
        "tasks_in_state": len(json.loads(state)["tasks"]),
        "stalled_after": stalled_after,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--histories", default="10,100,300,1000")
    ap.add_argument("--repeats", type=int, default=200, help="samples per cell (stock is capped by --budget)")
    ap.add_argument("--budget", type=float, default=20.0, help="max seconds of sampling per cell")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    histories = [int(h) for h in args.histories.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    process = load_process()
    engine = make_script_engine()
    results = []
    print("per step: load + complete + run + save, wall clock; cpu = thread CPU time (robust to other load);")
    print("load/run/save are the wall-clock medians of the parts")
    print(f"{'variant':<11} {'history':>7} {'median ms':>10} {'p90 ms':>8} {'min ms':>7} {'cpu ms':>7} {'load':>7} {'run':>7} {'save':>7}"
          f" {'state B':>9} {'tasks':>6}")
    for variant in variants:
        for rounds in histories:
            # Keep slow cells within the time budget: one probe step tells the cost.
            repeats = args.repeats
            try:
                state, task_id = build_state(variant, process, engine, rounds)
                t = time.perf_counter()
                one_step(variant, process, engine, state, task_id)
                cost = time.perf_counter() - t
                repeats = max(20, min(repeats, int(args.budget / max(cost, 1e-6))))
            except Stalled:
                pass
            gc.collect()
            r = measure(variant, process, engine, rounds, repeats)
            results.append(r)
            if "stalled_at" in r:
                print(f"{variant:<11} {rounds:>7}   stalls: `work` is no longer offered after round "
                      f"{r['stalled_at']} (task tree deeper than 1000, pitfall P9)")
                continue
            print(f"{variant:<11} {rounds:>7} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['min_ms']:>7.2f}"
                  f" {r['cpu_median_ms']:>7.2f} {r['load_ms']:>7.2f}"
                  f" {r['complete_run_ms']:>7.2f} {r['save_ms']:>7.2f} {r['state_bytes']:>9,} {r['tasks_in_state']:>6}"
                  f"{'  (stalls after this step)' if r['stalled_after'] else ''}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
