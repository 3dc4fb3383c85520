"""`phi1 synth exercises`: function-completion exercises in HumanEval's shape (signature + docstring ->
solution), each with the teacher's own tests. Every exercise is executed in the sandbox against its
tests; only those that pass are kept. The training text is signature + docstring + solution."""

from __future__ import annotations

import ast
import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from phi1 import prompts
from phi1.cards import CardStats, write_card
from phi1.config import Config, ExecutorConfig, SynthConfig
from phi1.executor import map_shards
from phi1.markdown import code_blocks
from phi1.records import content_id
from phi1.rundir import open_step
from phi1.sandbox import Limits, Mode, Sandbox
from phi1.synth.seeds import Seed, make_seeds
from phi1.synth.shards import ShardResult, write_shards
from phi1.synth.textbook import SEED_COLUMNS
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


def exercise_request(seed: Seed, temperature: float, max_tokens: int) -> Request:
    prompt = prompts.render(
        "exercise",
        topic=seed.topic,
        subtopic=seed.subtopic,
        audience=seed.audience,
        function_name=seed.function_name,
        constraint=seed.constraint,
    )
    return Request.chat(prompt, params=Params(temperature=temperature, max_tokens=max_tokens), sample=seed.index)


def parse_exercise(answer: str, function_name: str) -> Exercise | str:
    """The exercise in a teacher's answer, or the reason it cannot be used."""
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
        tree = ast.parse(code)
        ast.parse(tests)
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
    limits = Limits(timeout_s=cfg.verify_timeout_s)

    def shard(indices: range) -> ShardResult:
        seeds = make_seeds(cfg, indices.stop, config.seed, "exercise", start=indices.start)
        result = ShardResult([], {"requested": len(seeds), "parsed": 0, "verified": 0, "rejected": {}})
        rejected = result.counts["rejected"]
        with stage.timed("teacher_s"):
            parsed = _ask(teacher, seeds, cfg, result.usage, rejected)
        with stage.timed("verify_s"):
            programs = [(ex.code, ex.tests) for _, ex in parsed]
            for (seed, ex), status in zip(parsed, verdicts(sandbox, programs, job), strict=True):
                if status == "passed":
                    result.rows.append(exercise_row(seed, ex))
                else:
                    reason = VERDICT_REASONS[status]
                    rejected[reason] = rejected.get(reason, 0) + 1
        result.rows.sort(key=lambda r: r["seed_index"])
        result.counts.update(parsed=len(parsed), verified=len(result.rows))
        return result

    card = CardStats((*SEED_COLUMNS[:3], "constraint"))
    on_ray = config.executor.kind == "ray"
    job = VerifyJob((), limits, sandbox_mode, config.executor)
    # On Ray each node's tasks run sandboxes of their own: this machine needs none.
    here = contextlib.nullcontext() if on_ray else Sandbox(cfg.workers or Sandbox.default_workers(), sandbox_mode)
    with here as sandbox:
        totals = write_shards(stage, cfg.exercise_samples, cfg.shard_size, shard, SCHEMA, card)
    manifest = stage.finish(
        counts=totals.counts or {"requested": 0, "parsed": 0, "verified": 0, "rejected": {}},
        diversity=totals.diversity.result(),
        teacher={**teacher.describe(), **totals.usage.as_dict()},
        sandbox=sandbox_mode,
        executor=config.executor.kind,
    )
    write_card(
        stage.path,
        "Synthetic exercises",
        f"Function-completion exercises written by the teacher `{teacher.backend}:{teacher.model}` from "
        "`phi1/prompts/exercise.md`. Each was executed against the teacher's own tests in the sandbox; only "
        "those that passed are here. `text` = signature + docstring + solution; `tests` holds the asserts.",
        card,
        manifest,
    )
    return manifest


VERDICT_REASONS = {"failed": "failed_tests", "error": "error", "timeout": "timeout", "killed": "killed"}
VERIFY_CHUNK = 64  # exercises a Ray task runs (a few seconds of sandboxing)


@dataclass(frozen=True)
class VerifyJob:
    programs: tuple[tuple[str, str], ...]  # (code, tests)
    limits: Limits
    mode: Mode
    executor: ExecutorConfig


def verdicts(sandbox: Sandbox | None, programs: list[tuple[str, str]], job: VerifyJob) -> list[str]:
    """Each program's verdict status, in order: on this machine's `sandbox` pool, or without one (on Ray) one
    task per `VERIFY_CHUNK` programs, each running them in a sandbox of its own on whichever node it lands.
    `job` holds the limits, sandbox mode and executor (its programs are filled in per chunk)."""
    if sandbox is None:
        chunks = [
            replace(job, programs=tuple(programs[i : i + VERIFY_CHUNK])) for i in range(0, len(programs), VERIFY_CHUNK)
        ]
        return [s for part in map_shards(verify_chunk, chunks, job.executor, "verifying", unit="chunks") for s in part]
    statuses = [""] * len(programs)
    for i, verdict in sandbox.map([list(p) for p in programs], job.limits):
        statuses[i] = verdict.status
    return statuses


def verify_chunk(job: VerifyJob) -> list[str]:
    with Sandbox(workers=1, mode=job.mode) as sandbox:
        return [sandbox.run(list(program), job.limits).status for program in job.programs]


def _ask(
    teacher: Teacher, seeds: list[Seed], cfg: SynthConfig, usage: Usage, rejected: dict[str, int]
) -> list[tuple[Seed, Exercise]]:
    """The seeds' exercises that parse, in seed order; the reasons the others were rejected."""
    by_index = {s.index: s for s in seeds}
    parsed: list[tuple[Seed, Exercise]] = []
    requests = [exercise_request(s, cfg.temperature, cfg.max_tokens) for s in seeds]
    for response in teacher.generate(requests, usage, progress="writing exercises"):
        seed = by_index[response.request.sample]
        result = parse_exercise(response.text, seed.function_name) if response.ok else "teacher_error"
        if isinstance(result, str):
            rejected[result] = rejected.get(result, 0) + 1
        else:
            parsed.append((seed, result))
    parsed.sort(key=lambda p: p[0].index)
    return parsed


def exercise_row(seed: Seed, ex: Exercise) -> dict[str, Any]:
    text = ex.prompt + ex.solution
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
        "topic": seed.topic,
        "subtopic": seed.subtopic,
        "audience": seed.audience,
        "style": seed.style,
        "constraint": seed.constraint,
        "seed_index": seed.index,
    }
