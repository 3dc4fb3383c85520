"""`phi1 synth exercises`: function-completion exercises in HumanEval's shape (signature + docstring ->
solution), each with the teacher's own tests. Every exercise is executed in the sandbox against its
tests, and its tests against mutants of its solution (`synth.verify`); an exercise that fails, or whose
tests kill too few mutants (`weak_tests`), goes back to the teacher with what went wrong
(`synth.repair`), `synth.repair_attempts` times. Only those that pass with strong tests are kept. The
training text is signature + docstring + solution."""

from __future__ import annotations

import ast
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from phi1 import prompts, pysource
from phi1.cards import CardStats, write_card
from phi1.config import Config, ExecutorConfig, SynthConfig
from phi1.executor import map_shards
from phi1.markdown import code_blocks
from phi1.mutation.score import Settings
from phi1.records import content_id
from phi1.rundir import open_step
from phi1.sandbox import Limits, Mode, Sandbox
from phi1.synth.repair import REPAIRABLE, repair_request
from phi1.synth.seeds import Seed, make_seeds
from phi1.synth.shards import ShardResult, write_shards
from phi1.synth.textbook import SEED_COLUMNS
from phi1.synth.verify import Check, check_exercise
from phi1.teacher import Params, Request, Teacher, Usage

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("prompt", pa.string()),
        ("solution", pa.string()),
        ("tests", pa.string()),
        ("entry_point", pa.string()),
        ("verified", pa.bool_()),
        ("mutation_score", pa.float64()),  # killed / mutants run (null: not scored)
        ("mutants", pa.int64()),  # mutants run
        ("repairs", pa.int64()),  # repair rounds before it passed (0: the first answer)
        ("first_answer", pa.string()),  # a repaired exercise's first answer (code, then tests); null: none
        ("first_problem", pa.string()),  # what was wrong with it, as the repair request told the teacher
        ("topic", pa.string()),
        ("subtopic", pa.string()),
        ("audience", pa.string()),
        ("style", pa.string()),
        ("constraint", pa.string()),
        ("seed_index", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Exercise:
    code: str  # imports + signature + docstring + solution
    prompt: str  # imports + signature + docstring
    solution: str  # the body after the docstring
    tests: str
    entry_point: str

    @property
    def first_line(self) -> int:
        """The solution's first line: only it mutates, never the prompt."""
        return self.prompt.count("\n") + 1


def exercise_request(seed: Seed, temperature: float, max_tokens: int) -> Request:
    prompt = prompts.render(
        "exercise",
        topic=seed.topic,
        subtopic=seed.subtopic,
        audience=seed.audience,
        constraint=seed.constraint,
    )
    return Request.chat(prompt, params=Params(temperature=temperature, max_tokens=max_tokens), sample=seed.index)


def parse_exercise(answer: str, function_name: str | None = None) -> Exercise | str:
    """The exercise in a teacher's answer, or the reason it cannot be used. Its function is the one named
    `function_name` where given, else the first (the teacher names it for what it does)."""
    blocks = code_blocks(answer)
    if not blocks:
        return "no_code"
    if len(blocks) == 1:
        # Tolerate tests in the same block: the top-level asserts at its end.
        lines = blocks[0].rstrip().splitlines()
        cut = len(lines)
        while cut > 0 and (lines[cut - 1].startswith("assert ") or not lines[cut - 1].strip()):
            cut -= 1
        blocks = ["\n".join(lines[:cut]) + "\n", "\n".join(lines[cut:]) + "\n"]
    code, tests = blocks[0].rstrip() + "\n", blocks[1].rstrip() + "\n"
    try:
        tree = pysource.parse(code)
        pysource.parse(tests)
    except (SyntaxError, ValueError):
        return "syntax_error"
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    func = next((f for f in funcs if f.name == function_name), funcs[0] if funcs else None)
    if func is None:
        return "no_function"
    if "assert" not in tests:
        return "no_tests"
    doc = func.body[0] if func.body else None
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
        return "no_docstring"
    if len(func.body) < 2:
        return "no_solution"
    lines = code.splitlines(keepends=True)
    split = doc.end_lineno or doc.lineno
    prompt = "".join(lines[:split])
    solution = "".join(lines[split:])
    return Exercise(code, prompt, solution, tests, func.name)


def synth_exercises(run_dir: Path, config: Config, teacher: Teacher, force: bool = False) -> dict[str, Any]:
    cfg = config.synth
    sandbox_mode: Mode = config.evaluate.sandbox  # the one sandbox setting, which the key holds
    stage = open_step(run_dir, "exercises", config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=force)
    job = VerifyJob((), Limits(timeout_s=cfg.verify_timeout_s), sandbox_mode, config.executor, scoring(cfg))

    def shard(indices: range) -> ShardResult:
        seeds = make_seeds(cfg, indices.stop, config.seed, "exercise", start=indices.start)
        result = ShardResult([], empty_counts(len(seeds)))
        with stage.timed("teacher_s"):
            pending = _ask(teacher, seeds, cfg, result.usage, result.counts["rejected"])
        result.counts["parsed"] = len(pending)
        for _ in range(cfg.repair_attempts + 1):
            with stage.timed("verify_s"):
                results = checks(sandbox, [(p.exercise.code, p.exercise.tests, p.exercise.first_line) for p in pending],
                                 job)  # fmt: skip
            retry = _judge(pending, results, cfg, result)
            if not retry:
                break
            with stage.timed("teacher_s"):
                pending = _ask_repairs(teacher, retry, cfg, result.usage, result.counts["rejected"])
        result.rows.sort(key=lambda r: r["seed_index"])
        result.counts["verified"] = len(result.rows)
        return result

    card = CardStats((*SEED_COLUMNS[:3], "constraint"))
    on_ray = config.executor.kind == "ray"
    # On Ray each node's tasks run sandboxes of their own: this machine needs none.
    here = contextlib.nullcontext() if on_ray else Sandbox(cfg.workers or Sandbox.default_workers(), sandbox_mode)
    with here as sandbox:
        totals = write_shards(stage, cfg.exercise_samples, cfg.shard_size, shard, SCHEMA, card)
    counts = totals.counts or empty_counts(0)
    manifest = stage.finish(
        counts=counts,
        diversity=totals.diversity.result(),
        mutation=mutation_summary(counts, cfg),
        teacher={**teacher.describe(), **totals.usage.as_dict()},
        sandbox=sandbox_mode,
        executor=config.executor.kind,
    )
    write_card(
        stage.path,
        "Synthetic exercises",
        f"Function-completion exercises written by the teacher `{teacher.backend}:{teacher.model}` from "
        "`phi1/prompts/exercise.md`. Each was executed against the teacher's own tests in the sandbox, and "
        "the tests against mutants of the solution (`mutation_score`); only those that passed with tests "
        f"killing at least {cfg.min_mutation_score:g} of the mutants are here, some after a repair round "
        "(`repairs`, `phi1/prompts/repair.md`). `text` = signature + docstring + solution; `tests` holds "
        "the asserts.",
        card,
        manifest,
    )
    return manifest


def scoring(cfg: SynthConfig) -> Settings | None:
    """How exercises' tests are scored (None: not at all)."""
    return Settings(max_mutants=cfg.max_mutants) if cfg.max_mutants else None


def empty_counts(requested: int) -> dict[str, Any]:
    bins = {label: 0 for label in SCORE_BINS}
    return {"requested": requested, "parsed": 0, "verified": 0, "repaired": 0, "rejected": {},
            "mutation_scores": {"kept": dict(bins), "weak": dict(bins)}, "unscored": 0,
            "mutation_score_micros": 0}  # fmt: skip


# Histogram bins of mutation scores: tenths, and 1.0 (every mutant killed) apart.
SCORE_BINS = tuple(f"{i / 10:.1f}" for i in range(11))


def score_bin(score: float) -> str:
    return SCORE_BINS[min(10, int(score * 10 + 1e-9))] if score < 1 else SCORE_BINS[10]


def mutation_summary(counts: dict[str, Any], cfg: SynthConfig) -> dict[str, Any]:
    """The kept exercises' mutation scores, as the report shows them."""
    scored = sum(counts["mutation_scores"]["kept"].values())
    return {
        "enabled": cfg.max_mutants > 0,
        "min_mutation_score": cfg.min_mutation_score,
        "settings": scoring(cfg).identity() if cfg.max_mutants else None,
        "scored": scored,
        "mean": round(counts["mutation_score_micros"] / scored / 1e6, 4) if scored else None,
        "histogram": counts["mutation_scores"],
    }


def _judge(
    pending: list[Pending], results: list[Check], cfg: SynthConfig, result: ShardResult
) -> list[tuple[Pending, Check]]:
    """Keep what passed with strong tests; count the rest by its final reason, or return it for a repair."""
    counts, retry = result.counts, []
    for attempt, check in zip(pending, results, strict=True):
        reason = _reason(check, cfg)
        if reason in REPAIRABLE and attempt.repairs < cfg.repair_attempts:
            retry.append((attempt, check))
            continue
        score = check.score.mutation_score if check.score is not None else None
        if score is not None:  # kept, or rejected as weak_tests
            counts["mutation_scores"]["kept" if reason is None else "weak"][score_bin(score)] += 1
        if reason is not None:
            counts["rejected"][reason] = counts["rejected"].get(reason, 0) + 1
            continue
        result.rows.append(exercise_row(attempt, check))
        counts["repaired"] += attempt.repairs > 0
        if score is None:
            counts["unscored"] += 1
        else:
            # Millionths, an integer: the sum is the same whatever the shards and the order they add up in.
            counts["mutation_score_micros"] += round(score * 1_000_000)
    return retry


def _reason(check: Check, cfg: SynthConfig) -> str | None:
    if check.status != "passed":
        return VERDICT_REASONS[check.status]
    score = check.score.mutation_score if check.score is not None else None
    return "weak_tests" if score is not None and score < cfg.min_mutation_score else None


VERDICT_REASONS = {"failed": "failed_tests", "error": "error", "timeout": "timeout", "killed": "killed"}
VERIFY_CHUNK = 64  # exercises a Ray task runs (a few seconds of sandboxing)


@dataclass(frozen=True)
class VerifyJob:
    items: tuple[tuple[str, str, int], ...]  # (code, tests, first line of the solution)
    limits: Limits
    mode: Mode
    executor: ExecutorConfig
    settings: Settings | None = None  # mutation scoring (None: off)


def checks(sandbox: Sandbox | None, items: list[tuple[str, str, int]], job: VerifyJob) -> list[Check]:
    """Each exercise's check, in order: on this machine's `sandbox` pool, or without one (on Ray) one task
    per `VERIFY_CHUNK` exercises, each running them in a sandbox of its own on whichever node it lands.
    `job` holds the limits, sandbox mode, executor and scoring (its items are filled in per chunk)."""
    if sandbox is None:
        chunks = [replace(job, items=tuple(items[i : i + VERIFY_CHUNK])) for i in range(0, len(items), VERIFY_CHUNK)]
        return [c for part in map_shards(verify_chunk, chunks, job.executor, "verifying", unit="chunks") for c in part]
    with ThreadPoolExecutor(max_workers=sandbox.workers) as pool:
        return list(pool.map(lambda item: check_exercise(sandbox, *item, job.settings, job.limits), items))


def verify_chunk(job: VerifyJob) -> list[Check]:
    with Sandbox(workers=1, mode=job.mode) as sandbox:
        return [check_exercise(sandbox, *item, job.settings, job.limits) for item in job.items]


class Pending(NamedTuple):
    """An exercise on its way through verification and repair."""

    seed: Seed
    exercise: Exercise
    repairs: int  # repair rounds so far
    first: tuple[str, str] | None  # (the first answer's code and tests, what was wrong with it); None: no repair


def _ask(
    teacher: Teacher, seeds: list[Seed], cfg: SynthConfig, usage: Usage, rejected: dict[str, int]
) -> list[Pending]:
    """The seeds' exercises that parse, in seed order (with 0 repairs); the reasons the others were rejected."""
    requests = [exercise_request(s, cfg.temperature, cfg.max_tokens) for s in seeds]
    by_index = {s.index: (s, 0, None) for s in seeds}
    return _answers(teacher, requests, by_index, usage, rejected, "writing exercises")


def _ask_repairs(
    teacher: Teacher, retry: list[tuple[Pending, Check]], cfg: SynthConfig, usage: Usage, rejected: dict[str, int]
) -> list[Pending]:
    """The repaired exercises that parse; a repair answer that does not is rejected by why it does not."""
    requests, by_index = [], {}
    for attempt, check in retry:
        seed, ex = attempt.seed, attempt.exercise
        task = exercise_request(seed, cfg.temperature, cfg.max_tokens)
        request = repair_request(task, ex.code, ex.tests, check, cfg.min_mutation_score)
        requests.append(request)
        first = attempt.first or (f"{ex.code.rstrip()}\n\n\n{ex.tests.strip()}\n", failure_of(check, cfg))
        by_index[seed.index] = (seed, attempt.repairs + 1, first)
    return _answers(teacher, requests, by_index, usage, rejected, "repairing exercises")


def failure_of(check: Check, cfg: SynthConfig) -> str:
    """What was wrong with an answer, in a line: its tests' failure, or how weak its tests were."""
    if check.problem:
        return check.problem
    score = check.score.mutation_score if check.score is not None else None
    return f"weak tests: they kill {score:.0%} of the solution's mutants (at least {cfg.min_mutation_score:.0%} wanted)"


def _answers(
    teacher: Teacher, requests: list[Request], by_index: dict[int, tuple[Seed, int, tuple[str, str] | None]],
    usage: Usage, rejected: dict[str, int], progress: str,
) -> list[Pending]:  # fmt: skip
    parsed: list[Pending] = []
    for response in teacher.generate(requests, usage, progress=progress):
        seed, repairs, first = by_index[response.request.sample]
        result = parse_exercise(response.text) if response.ok else "teacher_error"
        if isinstance(result, str):
            rejected[result] = rejected.get(result, 0) + 1
        else:
            parsed.append(Pending(seed, result, repairs, first))
    parsed.sort(key=lambda p: p.seed.index)
    return parsed


def exercise_row(attempt: Pending, check: Check) -> dict[str, Any]:
    seed, ex, repairs = attempt.seed, attempt.exercise, attempt.repairs
    text = ex.prompt + ex.solution
    score = check.score
    return {
        "id": content_id(text),
        "text": text,
        "source": "exercises",
        "kind": "exercise",
        "prompt": ex.prompt,
        "solution": ex.solution,
        "tests": ex.tests,
        "entry_point": ex.entry_point,
        "verified": True,
        "mutation_score": score.mutation_score if score is not None else None,
        "mutants": score.run if score is not None else None,
        "repairs": repairs,
        "first_answer": attempt.first[0] if attempt.first else None,
        "first_problem": attempt.first[1] if attempt.first else None,
        "topic": seed.topic,
        "subtopic": seed.subtopic,
        "audience": seed.audience,
        "style": seed.style,
        "constraint": seed.constraint,
        "seed_index": seed.index,
    }
