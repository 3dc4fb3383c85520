"""Mutation scoring's cost, on offline-teacher exercises in the real sandbox:

1. exercises/s verified against their own tests alone, and verified + mutation-scored in the same program
   (`phi1 synth exercises` with `synth.max_mutants=0` and with the default 30). Target: scoring costs at
   most 2x verification alone (ratio = scored time / verification time <= 2).
2. mutants/s run many to a program (phi1's way) and one sandbox program per mutant (the naive way), on the
   same exercises' same mutants. Target: batched at least 10x the naive rate (a sandbox program costs an
   interpreter's start-up, ~10-40 ms; a mutant run in-process, well under 1 ms). The two must agree on every
   kill and survival, or the timing is void.

    .venv/bin/python benchmarks/testscore.py [--exercises 200] [--naive 40] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from phi1 import prompts
from phi1.config import ExecutorConfig
from phi1.mutation.mutants import mutants
from phi1.mutation.score import Settings, Target, score_all, seed_of
from phi1.sandbox import Limits, Sandbox
from phi1.synth.exercises import Exercise, VerifyJob, checks, parse_exercise
from phi1.teacher import Request
from phi1.teacher.offline import OfflineTeacher

TOPICS = ("lists and loops", "strings", "recursion", "dictionaries", "sorting and searching", "arithmetic")


def offline_exercises(n: int) -> list[Exercise]:
    teacher = OfflineTeacher(model="offline")
    requests = [
        Request.chat(prompts.render("exercise", topic=TOPICS[i % len(TOPICS)], subtopic="practice",
                                    audience="a student", function_name=f"task_{i}", constraint="none"), sample=i)
        for i in range(n)
    ]  # fmt: skip
    out = []
    for r in teacher.generate(requests):
        ex = parse_exercise(r.text, f"task_{r.request.sample}")
        assert isinstance(ex, Exercise), ex
        out.append(ex)
    return out


def timed_checks(sandbox: Sandbox, items: list[tuple[str, str, int]], settings: Settings | None) -> tuple[float, list]:
    job = VerifyJob((), Limits(timeout_s=10.0), "bwrap", ExecutorConfig(), settings)
    start = time.perf_counter()
    results = checks(sandbox, items, job)
    return time.perf_counter() - start, results


def naive_counts(sandbox: Sandbox, ex: Exercise, settings: Settings) -> tuple[int, int, int]:
    """(killed, survived, timed out) with one sandbox program per mutant."""
    target = Target("exercise", ex.code, (ex.tests,), (), ex.first_line)
    chosen = [m for m in mutants(ex.code, ex.first_line, settings.max_mutants, seed_of(target, settings)) if m.valid]
    verdicts = [sandbox.run([m.source, ex.tests], Limits(timeout_s=1.0)) for m in chosen]
    timeouts = sum(v.status == "timeout" for v in verdicts)
    survived = sum(v.passed for v in verdicts)
    return len(verdicts) - survived - timeouts, survived, timeouts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exercises", type=int, default=200)
    parser.add_argument("--naive", type=int, default=40, help="exercises whose mutants also run one per program")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    exercises = offline_exercises(args.exercises)
    items = [(ex.code, ex.tests, ex.first_line) for ex in exercises]
    settings = Settings()
    with Sandbox(args.workers) as sandbox:
        timed_checks(sandbox, items[:10], settings)  # warm the page cache: both sides start alike
        verify_s, plain = timed_checks(sandbox, items, None)
        scored_s, scored = timed_checks(sandbox, items, settings)
        assert [c.status for c in plain] == [c.status for c in scored] == ["passed"] * len(items)
        subset = exercises[: args.naive]
        targets = [Target(f"ex{i}", ex.code, (ex.tests,), (), ex.first_line) for i, ex in enumerate(subset)]
        start = time.perf_counter()
        batched = list(score_all(sandbox, targets, settings, Limits(timeout_s=10.0)))
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            naive = list(pool.map(lambda ex: naive_counts(sandbox, ex, settings), subset))
        naive_s = time.perf_counter() - start
    batched_mutants = sum(s.run + s.timeout for s in batched)
    naive_mutants = sum(sum(c) for c in naive)
    pairs = zip(batched, naive, strict=True)
    agree = all((s.killed, s.survived) == (k, sv) for s, (k, sv, t) in pairs if not t and not s.timeout)
    mean = sum(c.score.mutation_score for c in scored) / len(scored)
    print(f"exercises: {len(items)}  workers: {args.workers}  mean mutation score: {mean:.3f}")
    print(f"verified alone:    {verify_s:.2f}s ({len(items) / verify_s:.1f} exercises/s)")
    print(f"verified + scored: {scored_s:.2f}s ({len(items) / scored_s:.1f} exercises/s)")
    print(f"mutants of {len(subset)} exercises: {naive_mutants} one per program in {naive_s:.2f}s; "
          f"{batched_mutants} many to a program in {batched_s:.2f}s; kills agree: {agree}")  # fmt: skip
    if not agree or naive_mutants != batched_mutants:
        raise SystemExit("batched and naive runs disagree on the mutants: the timing is void")
    ratio = scored_s / verify_s
    print(f"RESULT scoring_cost_x value={scored_s:.3f} baseline={verify_s:.3f} ratio={ratio:.3f} target=2.0 "
          f"status={'met' if ratio <= 2.0 else 'missed'}")  # fmt: skip
    ours, theirs = batched_mutants / max(batched_s, 1e-9), naive_mutants / naive_s
    speedup = ours / theirs
    print(f"RESULT mutants_per_s value={ours:.1f} baseline={theirs:.1f} ratio={speedup:.2f} target=10.0 "
          f"status={'met' if speedup >= 10.0 else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
