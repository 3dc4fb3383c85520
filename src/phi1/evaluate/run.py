"""`phi1 eval`: completions in, pass@k out, every completion judged in the sandbox."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from phi1.errors import Phi1Error
from phi1.evaluate import benchmarks
from phi1.evaluate.chat import check_mode, use_chat
from phi1.evaluate.execute import Result, execute, summarize
from phi1.evaluate.generate import (
    Sample,
    Sampling,
    all_rows,
    generate_with_endpoint,
    generate_with_model,
    read_samples,
    reference_samples,
)
from phi1.evaluate.grade import grade_samples, grade_summary
from phi1.evaluate.perturb import FORMAT as PERTURB_FORMAT
from phi1.evaluate.perturb import Perturbed, Variant, robustness
from phi1.evaluate.perturb import perturb as perturb_benchmark
from phi1.gguf import as_checkpoint
from phi1.keys import config_changes
from phi1.precision import resolve
from phi1.records import write_json, write_jsonl
from phi1.sandbox import Limits, Mode, Sandbox
from phi1.teacher import Teacher


@dataclass(frozen=True)
class Source:
    """Exactly one of: a samples file, a local checkpoint, an endpoint, or the canonical solutions."""

    samples: Path | None = None
    model: Path | None = None
    endpoint: str | None = None
    model_name: str | None = None
    canonical: bool = False

    def check(self) -> None:
        given = [self.samples is not None, self.model is not None, self.endpoint is not None, self.canonical]
        if sum(given) != 1:
            raise Phi1Error("give exactly one of --samples FILE, --model DIR, --endpoint URL, --canonical")
        if self.endpoint is not None and not self.model_name:
            raise Phi1Error("--endpoint needs --model-name (the model the server serves)")

    def describe(self) -> dict:
        if self.samples is not None:
            return {"samples": str(self.samples)}
        if self.model is not None:
            return {"model": str(self.model)}
        if self.endpoint is not None:
            return {"endpoint": self.endpoint, "model_name": self.model_name}
        return {"canonical": True}


def run_eval(
    benchmark_name: str,
    source: Source,
    out: Path,
    problems: Path | None = None,
    ks: Sequence[int] = (1, 10, 100),
    sampling: Sampling | None = None,
    workers: int | None = None,
    sandbox_mode: Mode = "bwrap",
    timeout_s: float | None = None,
    batch_size: int = 8,
    references: Path | None = None,
    limit: int | None = None,
    task_ids: Sequence[str] | None = None,
    chat: str = "auto",
    perturb: Sequence[str] = (),
    variants: int = 5,
    perturb_seed: int = 0,
    grader: Teacher | None = None,
    bf16: str = "auto",
) -> dict:
    """Score `source` on a benchmark into OUT (results.jsonl, summary.json; generated completions are kept in
    samples.jsonl as they come). HumanEval+'s reference outputs are cached in `references` (default OUT).
    `chat` (auto/on/off): ask an instruct model in its chat template (`phi1.evaluate.chat`).
    `perturb` (categories of `phi1.evaluate.perturb`): every problem also in `variants` perturbed forms,
    written to OUT/perturbed/, judged like the rest; summary.json gains `robustness.<category>`.
    `grader`: the teacher grades every completion (`phi1.evaluate.grade`) into OUT/grades.jsonl and
    summary.json's `grade`; problems without tests (a user's own) are graded only. `bf16` (auto/on/off): a
    local model's weights in bf16 where native, always, or never (fp32: greedy answers independent of
    `batch_size`)."""
    source.check()
    check_mode(chat)
    if source.model is not None:
        resolve(bf16)  # a wrong setting stops here, before any sandbox or generation
    if source.samples is not None and not source.samples.exists():
        raise Phi1Error(f"{source.samples}: no such file")
    if perturb and not 1 <= variants <= 50:
        raise Phi1Error(f"--variants must be 1-50, got {variants}")
    sampling = sampling or Sampling()
    start = time.perf_counter()
    with Sandbox(workers=workers or Sandbox.default_workers(), mode=sandbox_mode) as sb:
        bench = benchmarks.load(benchmark_name, problems)
        total = len(bench.problems)
        chosen = _chosen(bench, limit, task_ids)
        chatted: bool | None = None
        # A samples file may hold every problem: it is read against all of them, then cut to the subset.
        if source.samples is None:
            bench.problems = {t: p for t, p in bench.problems.items() if t in chosen}
        varied = _perturbed(bench, list(perturb), variants, perturb_seed, out)
        every = bench.problems
        bench.problems = {t: p for t, p in every.items() if t.split("@")[0] in chosen}  # a variant: <task>@...
        nominal = {t: p for t, p in bench.problems.items() if t in chosen}
        if source.samples is not None:
            every_problem = replace(bench, problems=every)
            samples = [s for s in read_samples(source.samples, every_problem) if s.task_id in bench.problems]
        else:
            identity = perturb_identity(list(perturb), variants, perturb_seed)
            samples, chatted = _completions(bench, source, sampling, batch_size, out, chat, identity, bf16)
        limits = Limits(timeout_s=timeout_s) if timeout_s else None
        out.mkdir(parents=True, exist_ok=True)
        runnable = [s for s in samples if bench.problems[s.task_id].tests]  # a user's problem may have none
        results = execute(bench, runnable, sb, limits, references or out / REFERENCES)
    judged = replace(bench, problems={t: p for t, p in nominal.items() if p.tests})
    summary = summarize(judged, [r for r in results if r.task_id in nominal], ks, time.perf_counter() - start)
    if perturb:
        judged_variants = [v for v in varied.variants if v.task_id in bench.problems]
        summary["robustness"] = _robustness(judged_variants, results, variants, source.canonical)
        summary["perturbation"] = {**perturb_identity(list(perturb), variants, perturb_seed),
                                   "files": sorted(str(p) for p in (out / "perturbed").glob("*.jsonl"))}  # fmt: skip
    if grader is not None:
        summary["grade"] = _grade(grader, replace(bench, problems=nominal), samples, results, out)
    summary.update(
        partial=len(bench.problems) < total,
        problems_in_benchmark=total,
        source=source.describe(),
        problems_file=bench.source,
        sandbox=sandbox_mode,
        sampling=vars(sampling) if not source.samples and not source.canonical else None,
        chat=chatted,
        precision=resolve(bf16).as_dict() if source.model is not None else None,
    )
    write_results(out, bench, results, summary)
    # Piped output (CI logs, files) gets a wide table rather than rich's 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table(summary))
    if perturb:
        console.print(robustness_table(summary))
    return summary


def _grade(grader: Teacher, bench: benchmarks.Benchmark, samples: list[Sample], results: list[Result],
           out: Path) -> dict:  # fmt: skip
    by_key = {(r.task_id, r.completion_id): r for r in results}
    grades = grade_samples(grader, bench, [s for s in samples if s.task_id in bench.problems], by_key)
    write_jsonl(out / GRADES, (g.row() for g in grades))
    return {**grade_summary(grades), "teacher": grader.describe(), "file": str(out / GRADES)}


def perturb_identity(categories: list[str], variants: int, seed: int) -> dict | None:
    """What fixes the perturbed prompts (None: no perturbation), for generation.json and the summary."""
    if not categories:
        return None
    return {"categories": categories, "variants": variants, "seed": seed, "format": PERTURB_FORMAT}


def _perturbed(bench: benchmarks.Benchmark, categories: list[str], variants: int, seed: int, out: Path) -> Perturbed:
    """Add the perturbed problems to `bench` and write them (in its own format) to OUT/perturbed/."""
    if not categories:
        return Perturbed()
    varied = perturb_benchmark(bench, categories, variants, seed)
    bench.problems = {**bench.problems, **varied.problems}
    varied.write(out / "perturbed")
    return varied


def _robustness(judged: Sequence[Variant], results: Sequence[Result], variants: int, canonical: bool) -> dict:
    found = robustness(judged, {(r.task_id, r.completion_id): r.passed for r in results}, variants)
    for metrics in found.values():
        if canonical:  # the canonical solution of every variant: what proves a transformation kept the meaning
            metrics["verified"] = metrics["passed"]
    return found


def robustness_table(summary: dict) -> Table:
    t = Table(title=f"{summary['benchmark']}: robustness over {summary['perturbation']['variants']} variants")
    for column in ("category", "problems", "nominal pass@1", "robust pass@1", "robust drop@1", "robust relative@1",
                   "generated", "unchanged", "passed"):  # fmt: skip
        t.add_column(column, justify="left" if column == "category" else "right")
    rates = ("nominal_pass@1", "robust_pass@1", "robust_drop@1", "robust_relative@1")
    for category, m in summary["robustness"].items():
        counts = (str(m[k]) for k in ("generated", "unchanged", "passed"))
        t.add_row(category, str(m["problems"]), *(_pct(m[k]) for k in rates), *counts)
    return t


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _chosen(bench: benchmarks.Benchmark, limit: int | None, task_ids: Sequence[str] | None) -> set[str]:
    """The problems to evaluate: `task_ids` (in the benchmark's order), else the first `limit`, else all."""
    order = list(bench.problems)
    if task_ids:
        unknown = [t for t in task_ids if t not in bench.problems]
        if unknown:
            raise Phi1Error(f"--task-ids: {', '.join(unknown)} not in {bench.name} (e.g. {order[0]})")
        order = [t for t in order if t in set(task_ids)]
    if limit is not None:
        if limit < 1:
            raise Phi1Error(f"--limit must be at least 1, got {limit}")
        order = order[:limit]
    return set(order)


def _completions(
    bench: benchmarks.Benchmark,
    source: Source,
    sampling: Sampling,
    batch_size: int,
    out: Path,
    chat: str,
    perturbation: dict | None = None,
    bf16: str = "auto",
) -> tuple[list[Sample], bool | None]:
    """The samples to judge, and whether they were asked in chat form (None: not generated here)."""
    if source.canonical:
        return reference_samples(bench), None
    # Only `auto` looks at the model's tokenizer (for a chat template).
    chatted = use_chat(chat, _tokenizer(source.model) if source.model is not None and chat == "auto" else None)
    return _generate_kept(bench, source, sampling, batch_size, out, chatted, perturbation, bf16), chatted


def _tokenizer(model: Path) -> object | None:
    from transformers import AutoTokenizer

    path = as_checkpoint(model, "--model")
    if not (path / "config.json").exists():
        raise Phi1Error(f"{model}: not a transformers checkpoint (no config.json) or .gguf file")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _generate_kept(
    bench: benchmarks.Benchmark,
    source: Source,
    sampling: Sampling,
    batch_size: int,
    out: Path,
    chat: bool,
    perturbation: dict | None = None,
    bf16: str = "auto",
) -> list[Sample]:
    """Generate into OUT/samples.jsonl, one flushed line per completion as it is produced: a crash or kill
    loses none, and the same command later generates only the completions that are missing."""
    identity = {"benchmark": bench.name, "problems_file": bench.source, **source.describe(),
                "sampling": vars(sampling), "chat": chat}  # fmt: skip
    if perturbation is not None:  # only then: a folder generated before perturbation existed stays valid
        identity["perturbation"] = perturbation
    if source.model is not None:  # bf16 and fp32 give different greedy answers: never mixed in one folder
        identity["precision"] = resolve(bf16).name
    done = {(s.task_id, s.completion_id): s for s in _kept_samples(out, identity, bench)}
    todo = [row for row in all_rows(bench, sampling.n) if row not in done]
    if not todo:
        return list(done.values())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / GENERATION, identity)
    if source.model is not None:
        produced = generate_with_model(source.model, bench, sampling, batch_size=batch_size, rows=todo, chat=chat,
                                       bf16=bf16)  # fmt: skip
    else:
        assert source.endpoint and source.model_name
        produced = generate_with_endpoint(source.endpoint, source.model_name, bench, sampling, rows=todo, chat=chat)
    with (out / SAMPLES).open("a") as fh:
        for s in produced:
            fh.write(json.dumps({"task_id": s.task_id, "completion_id": s.completion_id, "completion": s.completion}))
            fh.write("\n")
            fh.flush()
            done[(s.task_id, s.completion_id)] = s
    return list(done.values())


SAMPLES, GENERATION, REFERENCES, GRADES = "samples.jsonl", "generation.json", "references.json", "grades.jsonl"


def _kept_samples(out: Path, identity: dict, bench: benchmarks.Benchmark) -> list[Sample]:
    """Completions an earlier run of the same generation left in OUT; an error if OUT holds another's."""
    path = out / SAMPLES
    if not path.exists():
        return []
    try:
        old = json.loads((out / GENERATION).read_text())
    except (OSError, json.JSONDecodeError):
        old = None
    if isinstance(old, dict) and "precision" not in old:  # written before the precision was recorded
        identity = {k: v for k, v in identity.items() if k != "precision"}
    if old != identity:
        changed = "; ".join(config_changes(old, identity)) if isinstance(old, dict) else "no generation.json"
        raise Phi1Error(
            f"{path}: holds completions of another generation ({changed}); use another --out, or delete the "
            "folder to start over"
        )
    text = path.read_text()
    if not text.endswith("\n"):  # a line cut by a kill mid-write: drop it, it is generated again
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    return read_samples(path, bench) if text else []


def write_results(out: Path, bench: benchmarks.Benchmark, results: Sequence[Result], summary: dict) -> None:
    """results.jsonl first, summary.json last: a folder with a summary holds a complete result."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    write_jsonl(out / "results.jsonl", (r.row(bench) for r in results))
    write_json(out / "summary.json", summary)


def table(summary: dict) -> Table:
    ks = sorted({k for m in summary["pass_at_k"].values() for k in m}, key=lambda k: int(k.split("@")[1]))
    partial = ""
    if summary.get("partial"):
        partial = f" (partial: {summary['problems']} of {summary['problems_in_benchmark']})"
    t = Table(
        title=f"{summary['benchmark']}: {summary['samples']} samples, {summary['tasks_evaluated']}"
        f"/{summary['problems']} problems{partial}"
    )
    t.add_column("metric", no_wrap=True)
    for k in ks:
        t.add_column(k, justify="right")
    for status in summary["status_counts"]:
        t.add_column(status, justify="right")
    t.add_column("wall", justify="right")
    t.add_column("samples/s", justify="right")
    for metric, values in summary["pass_at_k"].items():
        # The statuses are the benchmark's own tests' (HumanEval+'s stronger ones, not its base row's).
        own = metric == summary["benchmark"] or len(summary["pass_at_k"]) == 1
        t.add_row(
            metric,
            *[f"{100 * values[k]:.1f}%" if k in values else "-" for k in ks],
            *[str(v) if own else "-" for v in summary["status_counts"].values()],
            f"{summary['wall_s']:.1f}s",
            f"{summary['samples_per_s'] or 0:.1f}",
        )
    return t
