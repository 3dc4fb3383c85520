"""Perturbed benchmarks (ReCode, Wang et al. 2022): for each problem and each category, s variants made by
seeded, deterministic, semantics-preserving transformations; one module per category.

Variant v of a problem in a category takes the category's transformations in a per-problem rotated order
starting at v, and keeps the first that applies (`unchanged` where none does); each variant has its own seed.
A perturbed problem's task id is `<task>@<category>/<v>`; the `syntax` category varies partial-code problems
(`<task>@partial`: the prompt plus the first half of the canonical solution), its own nominal. In the written
files it is the row's `task_id` (MBPP's stays the integer its format has) and `phi1_task_id`.

Public API: `CATEGORIES`, `FORMAT`, `parse_categories`, `perturb`, `Perturbed`, `Variant`, `robustness`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from phi1.errors import Phi1Error
from phi1.evaluate.benchmarks import PROBLEM_OF_ROW, Benchmark, Problem
from phi1.evaluate.perturb import docstring, formatting, func_name, syntax
from phi1.evaluate.perturb.case import Case, Transform
from phi1.evaluate.perturb.metrics import robustness
from phi1.evaluate.perturb.rows import case_of, row_of
from phi1.records import read_jsonl, write_jsonl

CATEGORIES: dict[str, dict[str, Transform]] = {
    "docstring": docstring.TRANSFORMS,
    "func_name": func_name.TRANSFORMS,
    "format": formatting.TRANSFORMS,
    "syntax": syntax.TRANSFORMS,
}
PARTIAL = "partial"
FORMAT = 2  # of the transformations: part of what identifies a run's perturbed prompts

__all__ = ["CATEGORIES", "FORMAT", "Perturbed", "Variant", "parse_categories", "perturb", "robustness"]


@dataclass(frozen=True)
class Variant:
    category: str
    nominal: str  # the task id it varies: the benchmark's, or for `syntax` its partial-code problem's
    task_id: str
    index: int
    perturbation: str  # the transformation that made it, or "unchanged"


@dataclass
class Perturbed:
    problems: dict[str, Problem] = field(default_factory=dict)  # the variants, and the partial-code nominals
    variants: list[Variant] = field(default_factory=list)
    rows: dict[str, list[dict]] = field(default_factory=dict)  # file stem -> rows in the benchmark's format

    def write(self, folder: Path) -> list[Path]:
        """`<category>.jsonl` per category (and `partial.jsonl`, the syntax category's nominal problems)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for stem, rows in self.rows.items():
            write_jsonl(folder / f"{stem}.jsonl", rows)
            paths.append(folder / f"{stem}.jsonl")
        return paths


def parse_categories(text: str | list[str]) -> list[str]:
    """`all`, or a comma-separated list of categories, in CATEGORIES' order; an unknown one is an error."""
    items = text if isinstance(text, list) else [t.strip() for t in text.split(",") if t.strip()]
    if "all" in items:
        return list(CATEGORIES)
    unknown = [c for c in items if c not in CATEGORIES]
    if unknown or not items:
        raise Phi1Error(f"--perturb: unknown category {', '.join(unknown) or '(none)'}: choose all or any of "
                        f"{', '.join(CATEGORIES)}")  # fmt: skip
    return [c for c in CATEGORIES if c in items]


def perturb(bench: Benchmark, categories: list[str], variants: int, seed: int = 0) -> Perturbed:
    """The variants of every problem of `bench` (its chosen subset) in each category."""
    rows = _rows(bench)
    out = Perturbed()
    for category in categories:
        if category == "syntax":
            out.rows[PARTIAL] = []
        out.rows[category] = []
        for tid, problem in bench.problems.items():
            case, nominal = case_of(bench.name, rows[tid]), tid
            if category == "syntax":
                case = syntax.partial(case)
                if case is None:
                    continue  # one top-level statement: no partial code to vary
                nominal = f"{tid}@{PARTIAL}"
                _add(out, PARTIAL, bench.name, rows[tid], problem, case, nominal, None)
            for v in range(variants):
                name, changed = _variant(CATEGORIES[category], case, f"{seed}:{category}:{tid}", v)
                variant = Variant(category, nominal, f"{tid}@{category}/{v}", v, name)
                _add(out, category, bench.name, rows[tid], problem, changed, variant.task_id, variant)
                out.variants.append(variant)
    return out


def _variant(transforms: dict[str, Transform], case: Case, key: str, v: int) -> tuple[str, Case]:
    names = list(transforms)
    start = (random.Random(key).randrange(len(names)) + v) % len(names)
    rng = random.Random(f"{key}:{v}")
    for name in names[start:] + names[:start]:
        changed = transforms[name](case, rng)
        if changed is not None and changed != case:
            return name, changed
    return "unchanged", case


def _add(
    out: Perturbed, stem: str, bench_name: str, row: dict, nominal: Problem, case: Case, task_id: str,
    variant: Variant | None,
) -> None:  # fmt: skip
    new_row = row_of(bench_name, row, case)
    tags = {"phi1_task_id": task_id, "category": stem, "variant": variant.index if variant else None,
            "perturbation": variant.perturbation if variant else PARTIAL}  # fmt: skip
    if bench_name != "mbpp":  # string ids: a harness that keys problems by task_id sees every variant
        new_row = {**new_row, "task_id": task_id, "nominal_task_id": row["task_id"]}
    out.rows[stem].append({**new_row, **tags})
    problem = replace(PROBLEM_OF_ROW[bench_name](new_row), task_id=task_id, nominal=nominal.task_id)
    if nominal.plus is not None:  # the nominal's reference outputs, computed once for all its variants
        problem = replace(problem, plus=replace(nominal.plus, entry=nominal.entry_point))
    out.problems[task_id] = problem


def _rows(bench: Benchmark) -> dict[str, dict]:
    """The benchmark file's rows of the chosen problems, by task id."""
    found = {}
    for _, row in read_jsonl(bench.source):
        tid = PROBLEM_OF_ROW[bench.name](row).task_id
        if tid in bench.problems:
            found[tid] = row
    return found
