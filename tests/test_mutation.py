"""Mutation scores of tests (`phi1.mutation`, `phi1 testscore`): the mutants, the runner in the real sandbox,
and the known ordering of the benchmarks' own tests."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, phi1_cmd
from phi1.mutation.mutants import KINDS, Mutant, mutants
from phi1.mutation.score import Settings, Target, finish_score, score_all, score_target
from phi1.sandbox import Limits, Sandbox

CODE = '''import math


def clipped_total(xs: list[int], k: int = 2) -> int:
    """Twice the sum of the first k positive items, never above 100 (a docstring: 1 + 1 stays)."""
    total = 0
    for x in xs[:k]:
        if x > 0 and not x == 3:
            total += x * 2
    return min(total, 100) if xs else -1
'''
STRONG = (
    "assert clipped_total([1, 2, 5]) == 6\n"
    "assert clipped_total([5, 1, 7], 3) == 26\n"
    "assert clipped_total([-4, 2]) == 4\n"
    "assert clipped_total([3, 4]) == 8\n"
    "assert clipped_total([60, 60]) == 100\n"
    "assert clipped_total([]) == -1\n"
    "assert clipped_total([0, 1]) == 2\n"
    "assert clipped_total([2, 2, 2], 1) == 4\n"
)
WEAK = "assert clipped_total([1, 2, 5]) == 6\n"


def test_mutants_change_one_node_each_outside_the_prompt_and_docstring() -> None:
    every = mutants(CODE, limit=None)
    assert {m.kind for m in every} == set(KINDS)
    assert len({m.source for m in every}) == len(every) and all(m.source != CODE for m in every)
    doc = ast.get_docstring(ast.parse(CODE).body[1])
    for m in every:
        assert m.valid, m.diff(CODE)
        tree = ast.parse(m.source)
        assert ast.get_docstring(tree.body[1]) == doc  # the docstring's "1 + 1" is never mutated
        added = [line for line in m.diff(CODE).splitlines() if line.startswith("+")]
        assert len(added) == 1, m.diff(CODE)  # one change (a removed loop: its lines become one `pass`)
        assert m.source.splitlines()[:5] == CODE.splitlines()[:5]
    # From a prompt's end on: nothing before `first_line` changes.
    assert all(m.line >= 9 for m in mutants(CODE, first_line=9, limit=None))
    assert mutants(CODE, limit=None) == every and mutants("def broken(:\n", limit=None) == []


def test_the_cap_is_seeded_and_spread_over_the_kinds() -> None:
    chosen = mutants(CODE, limit=len(KINDS), seed=3)
    assert len(chosen) == len(KINDS) and {m.kind for m in chosen} == set(KINDS)
    assert chosen == mutants(CODE, limit=len(KINDS), seed=3)
    others = {m.source for s in range(6) for m in mutants(CODE, limit=len(KINDS), seed=s)}
    assert len(others) > len(KINDS)  # other seeds, other mutants


def test_strong_tests_score_higher_than_weak_ones_in_the_real_sandbox(sandbox: Sandbox) -> None:
    settings = Settings(max_mutants=200)
    strong, weak = score_all(
        sandbox, [Target("strong", CODE, (STRONG,)), Target("weak", CODE, (WEAK,))], settings, Limits(timeout_s=10)
    )
    assert strong.reference == weak.reference == "passed"
    assert strong.mutants == weak.mutants == len(mutants(CODE, limit=None))
    assert strong.run == weak.run == strong.mutants and strong.timeout == strong.invalid == 0
    assert weak.mutation_score < strong.mutation_score
    assert strong.mutation_score > 0.8 and weak.mutation_score < 0.8
    # A survivor is kept as its diff: here the weak test never calls with k, so k's default change survives.
    assert weak.survivors and all(s["diff"].startswith("@@") for s in weak.survivors)
    assert len(weak.survivors) == settings.max_survivors


def test_hangs_crashes_and_a_failing_reference_are_counted_apart(sandbox: Sandbox) -> None:
    code = 'def spin(n: int) -> int:\n    """Count down from n."""\n    while n > 0:\n        n -= 1\n    return n\n'
    tests = ("import os\nif spin.__code__.co_consts.count(2):\n    os._exit(3)\nassert spin(5) == 0\n",)
    settings = Settings(max_mutants=100, floor_s=0.3, cap_s=1.0)
    score = score_target(sandbox, Target("spin", code, tests), settings, Limits(timeout_s=10))
    # `n -= 1` -> `n += 1` spins past its alarm; `n > 0` -> `n > 1`... ends early; 1 -> 2 takes the program
    # down (os._exit): it counts as killed and the mutants after it still run.
    assert score.reference == "passed"
    assert score.timeout >= 1 and score.killed >= 3 and score.run + score.timeout == score.mutants
    failing = score_target(sandbox, Target("wrong", code, ("assert spin(5) == 1\n",)), settings, Limits())
    assert failing.reference == "failed" and failing.mutation_score is None and failing.run == 0
    # A mutant that does not parse is compiled in the sandbox and counted apart, between two that run.
    chosen = mutants(code, limit=2)
    broken = Mutant("constant", 4, code.replace("n -= 1", "n -= (1"))
    assert not broken.valid and all(m.valid for m in chosen)
    score = finish_score(sandbox, Target("spin", code, tests), [chosen[0], broken, chosen[1]], settings, Limits(),
                         None)  # fmt: skip
    assert score.invalid == 1 and score.run + score.timeout == 2 and score.mutants == 3


def test_a_reference_slower_than_the_mutant_cap_still_passes_within_its_own_limit(sandbox: Sandbox) -> None:
    # HumanEval+'s HumanEval/15 takes ~4.6 s of CPU against its plus inputs: near the 5 s mutant cap, over it
    # on a loaded machine. A reference is held to the dataset's own limit; the cap bounds its mutants.
    code = "def slow(n: int) -> int:\n    total = 0\n    for i in range(n):\n        total += i % 7\n    return total\n"
    spin = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end:\n    pass\n"
    tests = (spin + "assert slow(10) == 24\n",)
    score = score_target(sandbox, Target("slow", code, tests), Settings(max_mutants=3, cap_s=0.3), Limits(timeout_s=5))
    assert score.reference == "passed" and score.mutants == 3
    # Every mutant runs at most the cap: the 0.6 s test spin makes each a timeout, none a kill.
    assert score.timeout == 3 and score.killed == score.survived == 0
    # Over the dataset's own limit, the reference still times out.
    over = score_target(sandbox, Target("slow", code, tests), Settings(max_mutants=3, cap_s=0.3), Limits(timeout_s=0.4))
    assert over.reference == "timeout" and over.run == 0


@pytest.mark.slow
def test_testscore_ranks_humaneval_plus_above_humaneval_and_mbpp_low(tmp_path: Path, cli_env: dict) -> None:
    means = {}
    for bench in ("humaneval", "humaneval+", "mbpp"):
        out = tmp_path / bench
        args = ["testscore", "--benchmark", bench, "--out", str(out), "--limit", "20"]
        done = subprocess.run(phi1_cmd(*args), env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "mean mutation score" in done.stdout
        summary = json.loads((out / "summary.json").read_text())
        rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
        assert len(rows) == summary["problems"] == 20 and summary["reference_failed"] == 0
        assert (out / "histogram.png").stat().st_size > 3000
        means[bench] = summary["mean_mutation_score"]
        if bench == "humaneval+":
            # Plus inputs only add kills to the base inputs' on the same mutants.
            assert all(r["killed_at"]["base"] <= r["killed"] for r in rows)
            assert summary["mean_mutation_score"] > summary["mean_mutation_score_base"]
            assert summary["stronger_than_base"] >= 1
    assert means["humaneval+"] > means["humaneval"] > means["mbpp"], means


def test_testscore_reads_exercise_rows_and_names_a_bad_one(tmp_path: Path, cli_env: dict) -> None:
    prompt, solution = CODE.split("    total = 0")
    rows = [
        {"id": "strong", "prompt": prompt, "solution": "    total = 0" + solution, "tests": STRONG},
        {"id": "weak", "code": CODE, "tests": [WEAK]},
    ]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(phi1_cmd("testscore", "--data", str(data), "--out", str(tmp_path / "o")), env=cli_env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    scores = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "o" / "scores.jsonl").open()}
    assert scores["strong"]["mutation_score"] > scores["weak"]["mutation_score"]
    data.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"id": "x", "code": CODE}) + "\n")
    bad = subprocess.run(phi1_cmd("testscore", "--data", str(data), "--out", str(tmp_path / "p")), env=cli_env,
                         cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0 and f"{data}:2: field 'tests'" in bad.stderr
    assert not (tmp_path / "p" / "scores.jsonl").exists()
