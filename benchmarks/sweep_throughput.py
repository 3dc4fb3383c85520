"""The execution sweep's speed: every teacher-written function run against every HumanEval and MBPP problem of
its arity, one sandboxed program per function (`phi1.clean.twins.sweep_twins`, most of `phi1 clean`'s time),
with 10 HumanEval reference solutions renamed among them as planted twins.

phi1 compiles each problem's tests once per sweep and sends them compiled; the baseline is the same sweep with
the tests sent as source, which each program compiles again (phi1 before this script). Same functions, same
sandbox, same workers; both must find the same twins. Functions: the offline teacher's exercises.

    .venv/bin/python benchmarks/sweep_throughput.py [--exercises 300]
"""

from __future__ import annotations

import argparse
import json
import time

from helpers.twins import benchmark_problems, planted_twins
from phi1.clean.twins import SWEEP, Function, functions_of, sweep_twins
from phi1.config import SynthConfig, TeacherConfig
from phi1.sandbox import Limits, Sandbox
from phi1.synth.exercises import exercise_request
from phi1.synth.seeds import make_seeds
from phi1.teacher import make_teacher


def exercise_functions(n: int) -> list[Function]:
    teacher = make_teacher(TeacherConfig())
    requests = [exercise_request(s, 0.8, 1500) for s in make_seeds(SynthConfig(), n, 0, "exercise")]
    texts = [r.text.split("```python\n")[1].split("```")[0] for r in teacher.generate(requests)]
    return [f for k, text in enumerate(texts) for f in functions_of(text, "exercise", k)]


def source_sweep(functions: list[Function], tests: list[tuple[str, str]], arities: list, sandbox: Sandbox) -> set:
    """The sweep with each program carrying its problems' tests as source (compiled in every program)."""
    programs, jobs = [], []
    for i, f in enumerate(functions):
        cases = [(j, tests[j][0], tests[j][1]) for j, a in enumerate(arities) if a is not None and a == f.arity]
        if cases:
            jobs.append(i)
            programs.append([f.source, SWEEP + f"_phi1_sweep({cases!r}, {f.name!r}, 0.5)\n"])
    twins = set()
    for n, verdict in sandbox.map(programs, Limits(timeout_s=120, memory_mb=1024)):
        line = next((ln for ln in reversed(verdict.stdout.splitlines()) if ln.startswith("PHI1-TWINS ")), None)
        if line is not None:
            twins |= {(functions[jobs[n]].sample, int(j)) for j in json.loads(line[11:])}
    return twins


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exercises", type=int, default=300)
    args = parser.parse_args()
    problems, tests, arities = benchmark_problems()
    functions = exercise_functions(args.exercises)
    # Planted twins: HumanEval's own solutions under another name.
    functions += planted_twins(problems[:10], "exercise", args.exercises, lambda k, entry: f"planted_{k}")
    sandbox = Sandbox()
    sweep_twins(functions[:8], tests, arities, sandbox)  # warm both: the sandbox, the page cache
    source_sweep(functions[:8], tests, arities, sandbox)

    start = time.perf_counter()
    before = source_sweep(functions, tests, arities, sandbox)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    ours = {(t.sample, t.problem) for t in sweep_twins(functions, tests, arities, sandbox)}
    value = time.perf_counter() - start
    print(f"{len(functions)} functions x {len(problems)} problems (by arity), {sandbox.workers} sandboxes: tests as "
          f"source {baseline:.1f} s, compiled once {value:.1f} s; twins {len(before)} and {len(ours)}")  # fmt: skip
    ratio = baseline / value
    print(f"RESULT sweep_s value={value:.1f} baseline={baseline:.1f} ratio={ratio:.2f} target=1.2 "
          f"status={'met' if ratio >= 1.2 else 'missed'}")  # fmt: skip
    print(f"RESULT sweep_same_twins value={int(ours == before)} baseline=1 ratio={int(ours == before)} target=1 "
          f"status={'met' if ours == before else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
