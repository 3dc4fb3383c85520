"""The stage registry: every stage of the recipe declared once.

A *stage* is what `phi1 run` walks and a CLI command runs (`curate` writes five steps' folders, each step
declared in `phi1.steps`): its name, its steps, its run function, the command, config section and module a
user looks for. `phi1 run`, `--from/--only/--until`, the per-stage commands and the report all read this one
registry, and a test walks every step and every config field through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi1.config import Config
from phi1.errors import Phi1Error


@dataclass
class RunContext:
    """What every stage is given: one place builds the teacher (and its cache path) and picks the sandbox."""

    config: Config
    run_dir: Path
    _teacher: Any = field(default=None, repr=False)

    def teacher(self) -> Any:
        """The configured teacher, built on first use."""
        if self._teacher is None:
            from phi1.rundir import TEACHER_CACHE
            from phi1.teacher import make_teacher

            # make_teacher takes teacher.cache_path first, where one is set.
            self._teacher = make_teacher(self.config.teacher, self.run_dir / TEACHER_CACHE, self.config.executor)
        return self._teacher

    def release_teacher(self) -> None:
        """Give back what the teacher holds (the GPUs of its replicas): training and embedding need them."""
        if self._teacher is not None:
            self._teacher.release()


@dataclass(frozen=True)
class StageDef:
    name: str
    steps: tuple[str, ...]  # the folders it writes
    run: Callable[[RunContext, bool], Any]
    command: str  # runs it alone
    section: str  # the config section a user changes
    module: str  # where its code lives


def _curate(ctx: RunContext, force: bool) -> Any:
    from phi1.curate import run_curate

    return run_curate(ctx.config, ctx.run_dir, ctx.teacher(), force)


def synth_textbook(ctx: RunContext, force: bool) -> Any:
    from phi1.synth.textbook import synth_textbook as run

    return run(ctx.run_dir, ctx.config, ctx.teacher(), force)


def synth_exercises(ctx: RunContext, force: bool) -> Any:
    from phi1.synth.exercises import synth_exercises as run

    return run(ctx.run_dir, ctx.config, ctx.teacher(), force)


def _synth(ctx: RunContext, force: bool) -> Any:
    try:
        return {"textbook": synth_textbook(ctx, force), "exercises": synth_exercises(ctx, force)}
    finally:
        ctx.release_teacher()


def _clean(ctx: RunContext, force: bool) -> Any:
    from phi1.clean import run_clean

    # The judge's teacher is built only when the judge is on: without it clean needs no teacher.
    return run_clean(ctx.run_dir, ctx.config, force, ctx.teacher if ctx.config.clean.llm_judge else None)


def _tokenize(ctx: RunContext, force: bool) -> Any:
    from phi1.tokenize import tokenize

    return tokenize(ctx.run_dir, ctx.config, force)


def train_phase(phase: str) -> Callable[[RunContext, bool], Any]:
    def run(ctx: RunContext, force: bool, resume: bool | None = None) -> Any:
        from phi1.train import train

        return train(ctx.run_dir, ctx.config, phase, resume=not force if resume is None else resume, force=force)

    return run


def _evaluate(ctx: RunContext, force: bool) -> Any:
    from phi1.evaluate.stage import evaluate_run

    return evaluate_run(ctx.run_dir, ctx.config, force)


def _report(ctx: RunContext, force: bool) -> Any:
    from phi1.report import write_report

    return write_report(ctx.run_dir)


STAGES: dict[str, StageDef] = {
    s.name: s
    for s in (
        StageDef(
            "curate",
            ("corpus", "annotations", "embeddings", "classifier", "filtered"),
            _curate,
            "phi1 curate",
            "corpus, curate",
            "phi1/curate/",
        ),
        StageDef("synth", ("textbook", "exercises"), _synth, "phi1 synth textbook / exercises", "synth", "phi1/synth/"),
        StageDef("clean", ("clean",), _clean, "phi1 clean", "clean", "phi1/clean/"),
        StageDef("tokenize", ("tokenizer", "tokens"), _tokenize, "phi1 tokenize", "tokenize", "phi1/tokenize.py"),
        StageDef(
            "pretrain", ("pretrain",), train_phase("pretrain"), "phi1 train pretrain", "pretrain, model", "phi1/train/"
        ),
        StageDef("finetune", ("finetune",), train_phase("finetune"), "phi1 train finetune", "finetune", "phi1/train/"),
        StageDef("evaluate", ("eval",), _evaluate, "phi1 run --only evaluate", "evaluate", "phi1/evaluate/"),
        StageDef("report", (), _report, "phi1 report", "-", "phi1/report/"),
    )
}


def chosen_stages(from_stage: str | None = None, only: str | None = None, until: str | None = None) -> list[str]:
    """The stages a run does: `only` one, or from `from_stage` (default: the first) to `until` (the last)."""
    names = list(STAGES)
    for name in (from_stage, only, until):
        if name is not None and name not in STAGES:
            raise Phi1Error(f"unknown stage {name!r}: one of {', '.join(names)}")
    if only:
        if from_stage or until:
            raise Phi1Error("--only runs one stage: give it without --from or --until")
        return [only]
    first = names.index(from_stage) if from_stage else 0
    last = names.index(until) if until else len(names) - 1
    if last < first:
        raise Phi1Error(f"--until {until} comes before --from {from_stage}: nothing to run")
    return names[first : last + 1]


def stage_table() -> str:
    """The README's table of stages, rendered from the registry (a test keeps the README's copy equal)."""
    rows = ["| stage | command | run-dir folders | config | code |", "| --- | --- | --- | --- | --- |"]
    for s in STAGES.values():
        folders = ", ".join(f"`{f}/`" for f in s.steps) or "`report.md`, `figures/`"
        rows.append(f"| {s.name} | `{s.command}` | {folders} | {s.section} | `src/{s.module}` |")
    return "\n".join(rows)
