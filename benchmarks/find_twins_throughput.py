"""Execution twins of corpus functions (`phi1.clean.twins.find_twins`): the candidate (function, problem) pairs
that names pick, each function renamed to the problem's entry point and run against its tests.

Pairs: functions of the standard library's modules (the corpus `make run` curates), paired with HumanEval and
MBPP problems by `candidates` (the same arity, a name sharing words with the entry point), with 10 HumanEval
solutions renamed among them as planted twins. phi1 runs each function once over all of its problems (one
sandboxed program per function, a dead program's pairs again one by one); the baseline is one program per pair
(phi1 before). Same pairs, same sandbox, same workers; both must find the same twins.

    .venv/bin/python benchmarks/find_twins_throughput.py [--files 400]
"""

from __future__ import annotations

import argparse
import time

from helpers.twins import benchmark_problems, planted_twins
from phi1.clean.twins import Function, candidates, find_twins, functions_of
from phi1.curate.readers import stdlib_path
from phi1.sandbox import Limits, Sandbox


def stdlib_functions(files: int) -> list[Function]:
    paths = sorted(stdlib_path().glob("*.py"))[:files]
    return [f for k, p in enumerate(paths) for f in functions_of(p.read_text(errors="replace"), "code", k)]


def one_by_one(functions: list[Function], tests: list[tuple[str, str]], pairs: list, sandbox: Sandbox) -> set:
    """phi1 before: one sandboxed program per (function, problem) pair."""
    programs = [[functions[i].source, f"{tests[j][0]} = {functions[i].name}\n", tests[j][1]] for i, j in pairs]
    verdicts = sandbox.map(programs, Limits(timeout_s=5.0, memory_mb=1024))
    return {(functions[pairs[n][0]].sample, pairs[n][1]) for n, v in verdicts if v.passed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    problems, tests, arities = benchmark_problems()
    functions = stdlib_functions(args.files)
    # Planted twins: HumanEval's own solutions under a longer name.
    functions += planted_twins(problems[:10], "code", 10_000, lambda k, entry: f"{entry}_of_values")
    pairs = candidates(functions, [(p.entry_point, a) for p, a in zip(problems, arities, strict=True)], None)
    # The execution detector hands find_twins one Function object per pair, as here.
    pair_functions = [functions[i] for i, _ in pairs]
    pairs = [(n, j) for n, (_, j) in enumerate(pairs)]
    sandbox = Sandbox()
    one_by_one(pair_functions, tests, pairs[:16], sandbox)  # warm both: the sandbox, the page cache
    find_twins(pair_functions, tests, pairs[:16], sandbox)

    start = time.perf_counter()
    before = one_by_one(pair_functions, tests, pairs, sandbox)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    ours = {(t.sample, t.problem) for t in find_twins(pair_functions, tests, pairs, sandbox)}
    value = time.perf_counter() - start
    distinct = len(set(pair_functions))
    print(f"{len(pairs)} pairs of {distinct} functions ({len(functions)} in {args.files} files), {sandbox.workers} "
          f"sandboxes: a program per pair {baseline:.1f} s, per function {value:.1f} s; twins {len(before)} and "
          f"{len(ours)}")  # fmt: skip
    ratio = baseline / value
    print(f"RESULT find_twins_s value={value:.1f} baseline={baseline:.1f} ratio={ratio:.2f} target=2.0 "
          f"status={'met' if ratio >= 2.0 else 'missed'}")  # fmt: skip
    same = int(ours == before and len(ours) >= 10)
    print(f"RESULT find_twins_same_twins value={same} baseline=1 ratio={same} target=1 "
          f"status={'met' if same else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
