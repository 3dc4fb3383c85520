"""`phi1 eval --perturb`: ReCode-style perturbed benchmarks whose meaning is proven by execution."""

from __future__ import annotations

import functools
import json
import random
import subprocess
from pathlib import Path

import pytest

from conftest import phi1_cmd
from phi1 import pysource
from phi1.errors import Phi1Error
from phi1.evaluate import benchmarks
from phi1.evaluate.perturb import CATEGORIES, Perturbed, Variant, parse_categories, perturb, robustness
from phi1.evaluate.perturb.case import RESERVED
from phi1.evaluate.perturb.rows import case_of
from phi1.evaluate.run import Source, run_eval
from phi1.records import read_jsonl


@functools.cache
def _every_variant(name: str) -> Perturbed:
    """The whole benchmark, every category, two variants: parsed below, and it picks the problems to run."""
    return perturb(benchmarks.load(name), list(CATEGORIES), 2, seed=0)


def _rows(name: str) -> dict[str, dict]:
    bench = benchmarks.load(name)
    out = {}
    for _, row in read_jsonl(bench.source):
        out[f"MBPP/{int(row['task_id'])}" if name == "mbpp" else row["task_id"]] = row
    return out


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_every_variant_of_every_problem_is_python_and_keeps_what_it_must(name: str) -> None:
    """All problems, all categories: what execution proves on a subset below, the parser checks on all."""
    bench = benchmarks.load(name)
    varied = _every_variant(name)
    assert len(varied.variants) >= 2 * 3 * len(bench.problems)
    for v in varied.variants:
        problem = varied.problems[v.task_id]
        nominal = bench.problems[v.task_id.split("@")[0]]
        for stage in problem.program(problem.reference):  # the program the canonical run executes
            pysource.parse(stage)  # MBPP's regexes: the compiler's warnings are not the question here
        if v.category == "func_name" and v.perturbation != "unchanged":
            assert problem.entry_point != nominal.entry_point and problem.entry_point not in RESERVED
            assert problem.entry_point.isidentifier()
        else:
            assert problem.entry_point == nominal.entry_point
        if v.category == "docstring" and name == "humaneval":
            # The examples (>>> lines and what they print) are the nominal's, byte for byte.
            examples = [line for line in nominal.prompt.splitlines() if ">>>" in line]
            assert [line for line in problem.prompt.splitlines() if ">>>" in line] == examples


def test_perturbation_is_deterministic_and_the_seed_changes_it() -> None:
    bench = benchmarks.load("humaneval")
    bench.problems = dict(list(bench.problems.items())[:20])
    a, b = perturb(bench, ["docstring", "func_name"], 4, seed=1), perturb(bench, ["docstring", "func_name"], 4, seed=1)
    assert a.rows == b.rows and a.variants == b.variants
    c = perturb(bench, ["docstring", "func_name"], 4, seed=2)
    assert c.rows != a.rows
    # Variants of one problem differ from one another (each its own transformation first).
    prompts = [p.prompt for t, p in a.problems.items() if t.startswith("HumanEval/0@docstring/")]
    assert len(set(prompts)) == 4


def test_func_name_renames_prompt_examples_and_tests_consistently() -> None:
    bench = benchmarks.load("humaneval")
    row = _rows("humaneval")["HumanEval/2"]  # truncate_number: its name in the examples and the tests
    case = case_of("humaneval", row)
    for name, transform in CATEGORIES["func_name"].items():
        changed = transform(case, random.Random(0))
        assert changed is not None, name
        assert changed.entry != "truncate_number" and "truncate_number" not in changed.prompt, name
        assert f"def {changed.entry}(" in changed.prompt and f">>> {changed.entry}(" in changed.prompt, name
        assert changed.reference == case.reference, name  # the body does not name the function
    mbpp = case_of("mbpp", _rows("mbpp")["MBPP/11"])  # remove_Occ: its tests call it by name
    for name, transform in CATEGORIES["func_name"].items():
        changed = transform(mbpp, random.Random(0))
        assert changed is not None and changed.entry != mbpp.entry, name
        assert all(f"{changed.entry}(" in t and f"{mbpp.entry}(" not in t for t in changed.tests[:-1]), name
        assert f"def {changed.entry}(" in changed.prompt or f"{changed.entry}(" in changed.prompt, name
    assert bench.problems["HumanEval/2"].entry_point == "truncate_number"


def test_docstring_noise_touches_prose_only() -> None:
    row = _rows("humaneval")["HumanEval/0"]
    case = case_of("humaneval", row)
    code_lines = [line for line in case.prompt.splitlines() if not line.startswith("    ") or ">>>" in line]
    for name, transform in CATEGORIES["docstring"].items():
        for seed in range(5):
            changed = transform(case, random.Random(seed))
            if changed is None:
                continue
            assert changed.entry == case.entry and changed.tests == case.tests, name
            kept = [line for line in changed.prompt.splitlines() if not line.startswith("    ") or ">>>" in line]
            assert kept == code_lines, name  # imports, the signature and the examples are untouched


def test_syntax_varies_the_partial_code_and_keeps_the_prompt() -> None:
    bench = benchmarks.load("humaneval")
    bench.problems = dict(list(bench.problems.items())[:40])
    varied = perturb(bench, ["syntax"], 5)
    partial = {r["phi1_task_id"]: r for r in varied.rows["partial"]}
    assert partial and all(t.endswith("@partial") for t in partial)
    for row in varied.rows["syntax"]:
        nominal = partial[row["phi1_task_id"].split("@")[0] + "@partial"]
        original = bench.problems[row["nominal_task_id"]].prompt
        assert nominal["prompt"].startswith(original) and len(nominal["prompt"]) > len(original)
        pysource.parse(row["prompt"] + row["canonical_solution"])
    assert {v.perturbation for v in varied.variants} >= {"var_rename", "dead_code", "operand_swap"}


def test_perturbed_files_load_as_the_benchmark_they_came_from(tmp_path: Path) -> None:
    for name in ("humaneval", "mbpp", "humaneval+"):
        bench = benchmarks.load(name)
        bench.problems = dict(list(bench.problems.items())[:6])
        varied = perturb(bench, list(CATEGORIES), 2)
        paths = varied.write(tmp_path / name)
        fields = set(next(iter(_rows(name).values())))
        assert {p.stem for p in paths} == set(CATEGORIES) | {"partial"}
        for path in paths:
            again = benchmarks.load(name, path)
            assert len(again.problems) == len(varied.rows[path.stem]), path
            assert set(varied.rows[path.stem][0]) >= fields  # the benchmark's own fields, and phi1's tags


def _covering(name: str) -> list[str]:
    """A few problems among whose variants every transformation that applies anywhere in the benchmark does."""
    bench = benchmarks.load(name)
    chosen: dict[str, str] = {}
    for v in _every_variant(name).variants:
        chosen.setdefault(v.perturbation, v.task_id.split("@")[0])
    return sorted(set(chosen.values()) | set(list(bench.problems)[:4]), key=list(bench.problems).index)


@pytest.mark.parametrize("name", ["humaneval", "mbpp", "humaneval+"])
def test_canonical_solutions_pass_every_perturbed_problem(tmp_path: Path, name: str) -> None:
    """Each canonical solution (renamed with its function) passes every variant's tests: no transformation that
    applies anywhere in the benchmark changes a problem's meaning (all problems: `phi1 eval --canonical
    --perturb all`, figures in docs/robustness.md)."""
    variants = 2  # as _every_variant's
    task_ids = _covering(name) if name != "humaneval+" else None
    summary = run_eval(name, Source(canonical=True), tmp_path, ks=[1], workers=2, task_ids=task_ids,
                       limit=None if task_ids else 5, perturb=list(CATEGORIES), variants=variants)  # fmt: skip
    count = summary["problems"]
    assert all(k == {"pass@1": 1.0} for k in summary["pass_at_k"].values()), summary["pass_at_k"]
    seen = set()
    for category, m in summary["robustness"].items():
        assert m["nominal_pass@1"] == m["robust_pass@1"] == 1.0, (category, m)
        assert m["robust_drop@1"] == 0.0 and m["robust_relative@1"] == 0.0
        assert m["verified"] == m["generated"] == m["passed"] == variants * m["problems"], (category, m)
        assert m["problems"] == count or category == "syntax"
        seen |= set(m["transformations"]) - {"unchanged"}
    if task_ids:
        assert seen == {v.perturbation for v in _every_variant(name).variants} - {"unchanged"}
    files = sorted(Path(p).name for p in summary["perturbation"]["files"])
    assert files == sorted(f"{c}.jsonl" for c in [*CATEGORIES, "partial"])
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    judged = (
        count
        + summary["robustness"]["syntax"]["problems"]
        + sum(m["generated"] for m in summary["robustness"].values())
    )
    assert len(rows) == judged and all(r["passed"] for r in rows)


def _variants(nominal: str, category: str, n: int) -> list[Variant]:
    return [Variant(category, nominal, f"{nominal}@{category}/{i}", i, "t") for i in range(n)]


def test_robust_metrics_are_recodes() -> None:
    """Four problems, two variants: (nominal, variants) = (pass, pass pass), (pass, pass fail), (fail, fail fail),
    (fail, pass fail): robust pass 1/4, nominal 2/4, drop 1/2, relative 2/4 (one pass lost, one fail won)."""
    cases = {"A": (True, True, True), "B": (True, True, False), "C": (False, False, False), "D": (False, True, False)}
    variants, passed = [], {}
    for tid, (nom, *vs) in cases.items():
        passed[(tid, 0)] = nom
        for v, ok in zip(_variants(tid, "docstring", 2), vs, strict=True):
            variants.append(v)
            passed[(v.task_id, 0)] = ok
    m = robustness(variants, passed, 2)["docstring"]
    assert m["problems"] == 4 and m["nominal_pass@1"] == 0.5 and m["robust_pass@1"] == 0.25
    assert m["robust_drop@1"] == 0.5 and m["robust_relative@1"] == 0.5
    assert m["generated"] == 8 and m["passed"] == 4
    # With samples: completion j of the nominal against completion j of each variant.
    passed2 = {("A", 0): True, ("A", 1): False, ("A@f/0", 0): True, ("A@f/0", 1): True}
    m2 = robustness([Variant("f", "A", "A@f/0", 0, "t")], passed2, 1)["f"]
    assert m2["nominal_pass@1"] == 0.5 and m2["robust_pass@1"] == 1.0 and m2["robust_relative@1"] == 0.5
    assert m2["robust_drop@1"] == -1.0  # a perturbation can help: ReCode's drop is then negative


def test_unknown_category_is_one_clear_line(tmp_path: Path, cli_env: dict) -> None:
    with pytest.raises(Phi1Error, match="unknown category typo"):
        parse_categories("docstring,typo")
    assert parse_categories("all") == list(CATEGORIES) and parse_categories("syntax,format") == ["format", "syntax"]
    proc = subprocess.run(phi1_cmd("eval", "--benchmark", "humaneval", "--canonical", "--perturb", "typo", "--out",
                                   str(tmp_path)), env=cli_env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "unknown category typo" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_samples_of_perturbed_prompts_are_scored(tmp_path: Path) -> None:
    """An outside harness's completions of the written perturbed problems come back with --samples."""
    first = run_eval("humaneval", Source(canonical=True), tmp_path / "a", ks=[1], workers=2, limit=3,
                     perturb=["func_name"], variants=2)  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
    samples = tmp_path / "samples.jsonl"
    # Every completion right except the second variant of the first problem, which is given a wrong body.
    lines = []
    for r in rows:
        wrong = r["task_id"] == "HumanEval/0@func_name/1"
        lines.append({"task_id": r["task_id"], "completion": "    return None\n" if wrong else r["completion"]})
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = run_eval("humaneval", Source(samples=samples), tmp_path / "b", ks=[1], workers=2, limit=3,
                       perturb=["func_name"], variants=2)  # fmt: skip
    m = summary["robustness"]["func_name"]
    assert first["robustness"]["func_name"]["robust_pass@1"] == 1.0
    assert m["nominal_pass@1"] == 1.0 and m["robust_pass@1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["passed"] == 5 and "verified" not in m


def test_for_to_while_keeps_a_loop_body_indented_unlike_the_function() -> None:
    """MBPP/353's `for` sits 3 spaces in and its body 4: the `try` that feeds the loop must be at the body's
    own depth (found by `phi1 eval --benchmark mbpp --canonical --perturb all --variants 5`)."""
    from phi1.evaluate.perturb import syntax

    case = case_of("mbpp", _rows("mbpp")["MBPP/353"])
    part = syntax.partial(case)
    assert part is not None and "for i in list1" in part.prompt
    changed = syntax.for_to_while(part, random.Random(0))
    assert changed is not None and "while True:" in changed.prompt
    namespace: dict = {}
    exec(compile(changed.prompt + changed.reference, "mbpp-353", "exec"), namespace)
    assert namespace["remove_column"]([[1, 2, 3], [2, 4, 5], [1, 1, 1]], 0) == [[2, 3], [4, 5], [1, 1]]
