"""What running designer code in worker processes costs (issue 13), in one run.

For each kind of call, the median and p95 in microseconds of:

  in-process   the old way: RestrictedPython and the trace-function deadline in the calling
               thread (engine/restricted.py called directly; no hard limits)
  pool         engine.sandbox.SandboxEnvironment: the same code in a pooled worker process with
               RLIMIT_AS/RLIMIT_CPU and the parent's wall-clock kill (engine/isolation.py)

Calls measured, each over task data of about `--data-kb` KB:
  script       execute "total = a + b\\nflag = total > 10" (task data goes there and back)
  condition    evaluate "amount > 1000 and dept in ('IT', 'OPS')"
  template     render "Round {{ rounds + 1 }} for {{ name }}"
  step         one engine step of bench/loop.bpmn as the service does it for a completion: load the
               saved state, complete `work` (postscript-free user task; then the script `tick`, the
               gateway `again` with two conditions, and the instructions of the next `work`), save

    python bench/isolation.py [--repeats 2000] [--data-kb 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import restricted  # noqa: E402
from engine.loader import load_bundle  # noqa: E402
from engine.runtime import Instance  # noqa: E402
from engine.sandbox import SandboxEnvironment, SandboxScriptEngine  # noqa: E402

SCRIPT = "total = a + b\nflag = total > 10"
CONDITION = "amount > 1000 and dept in ('IT', 'OPS')"
TEMPLATE = "Round {{ rounds + 1 }} for {{ name }}"


class InProcess(SandboxEnvironment):
    """The environment as it was before isolation: everything in the calling thread."""

    def _call(self, op, source, data, external_context):
        deadline = restricted.Deadline(self.time_limit)
        if op == "render":
            return {"ok": restricted.render(source, data, deadline)}
        code = restricted.compiled(source, op)
        external = {**self.helpers, **(external_context or {})}
        if op == "eval":
            namespace = {**external, **data, **restricted.namespace_for(code)}
            return {"ok": restricted.run(code.code, namespace, eval, deadline)}
        data.update(external)
        data.update(restricted.namespace_for(code))
        restricted.run(code.code, data, exec, deadline)
        restricted.strip_non_data(data, keep_out=external)
        return {"data": dict(data)}  # execute() refills the caller's dict from this


def sample(call, repeats: int) -> list[float]:
    for _ in range(min(50, repeats)):
        call()
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        out.append(time.perf_counter() - began)
    return out


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round((len(values) - 1) * p)))]


def data_of(kb: int) -> dict:
    return {"a": 4, "b": 9, "amount": 5000, "dept": "IT", "rounds": 3, "name": "李雷",
            "note": "备注" * (kb * 1024 // 6), "lines": list(range(20))}


def step_call(env: SandboxEnvironment):
    process = load_bundle({"loop.bpmn": (ROOT / "bench" / "loop.bpmn").read_bytes()}).processes["bench_loop"]
    engine = SandboxScriptEngine(env)
    instance = Instance.start(process, engine, {"initiator": "bench"})
    state = instance.dumps()
    task_id = Instance.load(process, state, engine).user_tasks()[0].id

    def call():
        again = Instance.load(process, state, engine)
        again.complete(task_id, {"done": False})
        if again.incidents:
            raise RuntimeError(again.incidents)
        again.user_tasks()  # the service's task projection reads the new task's instructions
        again.dumps()
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--data-kb", type=int, default=4)
    args = parser.parse_args()
    variants = {"in-process": InProcess(time_limit=2.0), "pool": SandboxEnvironment(time_limit=2.0)}
    variants["pool"].evaluate("0", {})  # start the first worker outside the timing
    data = data_of(args.data_kb)
    calls = {
        "script": lambda env: (lambda: env.execute(SCRIPT, dict(data))),
        "condition": lambda env: (lambda: env.evaluate(CONDITION, data)),
        "template": lambda env: (lambda: env.render(TEMPLATE, data)),
        "step": step_call,
    }
    print(f"# {platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, task data ≈ {args.data_kb} KB, "
          f"{args.repeats} calls each")
    print(f"{'call':<10} {'in-process µs (median / p95)':>30} {'pool µs (median / p95)':>26} {'added µs':>9}")
    for name, make in calls.items():
        results = {}
        for variant, env in variants.items():
            values = sample(make(env), args.repeats if name != "step" else max(200, args.repeats // 5))
            results[variant] = (statistics.median(values) * 1e6, percentile(values, 0.95) * 1e6)
        old, new = results["in-process"], results["pool"]
        print(f"{name:<10} {old[0]:>17.0f} / {old[1]:>8.0f}   {new[0]:>13.0f} / {new[1]:>8.0f}   "
              f"{new[0] - old[0]:>7.0f}")


if __name__ == "__main__":
    main()
