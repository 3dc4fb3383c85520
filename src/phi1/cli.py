"""The `phi1` command: one sub-command per stage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from phi1 import cli_tools
from phi1.cli_options import ConfigOpt, RunDirOpt, SetOpt, run_context, setup_run
from phi1.errors import Phi1Error

app = typer.Typer(
    name="phi1",
    help="Build small, strong code language models the phi-1 way.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Build small, strong code language models the phi-1 way."""


teacher_app = typer.Typer(help="Teacher LLM utilities.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


def _run_stage(name: str, ctx, force: bool):
    from phi1.stages import STAGES

    return STAGES[name].run(ctx, force)


@app.command("curate")
def curate_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: Annotated[bool, typer.Option(help="redo every step, ignoring finished work")] = False,
    show_prompt: Annotated[bool, typer.Option(help="print the annotation prompt and exit")] = False,
) -> None:
    """Rate a raw code corpus for educational value and keep the textbook-quality part."""
    if show_prompt:
        from phi1 import prompts

        typer.echo(prompts.template("annotate"))
        return
    ctx = run_context(config, set_, run_dir)
    path = ctx.run_dir
    result = _run_stage("curate", ctx, force)
    m = result["classifier"].get("metrics", {})
    f = result["filtered"]["counts"]
    typer.echo(f"corpus:      {result['corpus']['counts']['documents']} files read, skipped {f['skipped'] or 'none'}")
    typer.echo(
        f"annotated:   {result['annotations']['counts']['valid']} valid of "
        f"{result['annotations']['counts']['sampled']} sampled"
    )
    typer.echo(f"classifier:  accuracy {m.get('accuracy')}  macro-F1 {m.get('macro_f1')}  ROC-AUC {m.get('roc_auc')}")
    typer.echo(
        f"kept:        {f['kept']} of {f['scored']} files (~{f['kept_tokens_approx']} tokens) -> {path / 'filtered'}"
    )


synth_app = typer.Typer(help="Write the synthetic textbook and exercises with the teacher.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")
SandboxOpt = Annotated[
    str | None,
    typer.Option("--sandbox", help="bwrap, or none (UNSAFE: runs teacher code unisolated); default: evaluate.sandbox"),
]


def _diversity_line(manifest: dict) -> str:
    d = manifest.get("diversity") or {}
    return (
        f"diversity:   {d.get('distinct_topic_audience_style', 0)} topic/audience/style combinations, "
        f"{d.get('distinct_subtopics', 0)} subtopics, mean pairwise MinHash similarity "
        f"{d.get('mean_pairwise_minhash_similarity', 0)} over {d.get('similarity_sample', 0)} samples"
    )


@synth_app.command("textbook")
def synth_textbook_cmd(
    config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, force: bool = False
) -> None:
    """Textbook sections (prose + code) from seeded topics, audiences and styles."""
    from phi1.stages import synth_textbook

    ctx = run_context(config, set_, run_dir)
    path = ctx.run_dir
    m = synth_textbook(ctx, force)
    c = m["counts"]
    typer.echo(f"textbook:    {c['kept']} of {c['requested']} sections kept, dropped {c['dropped'] or 'none'}")
    typer.echo(_diversity_line(m))
    typer.echo(f"written to:  {path / 'textbook'}")


@synth_app.command("exercises")
def synth_exercises_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: bool = False,
    sandbox: SandboxOpt = None,
) -> None:
    """Exercises (signature + docstring -> solution), each verified against its tests in the sandbox."""
    from phi1.stages import synth_exercises

    # --sandbox is evaluate.sandbox, the one setting both `phi1 run` and the exercises' key read.
    ctx = run_context(config, [*(set_ or []), *([f"evaluate.sandbox={sandbox}"] if sandbox else [])], run_dir)
    path = ctx.run_dir
    m = synth_exercises(ctx, force)
    c = m["counts"]
    typer.echo(f"exercises:   {c['verified']} of {c['requested']} verified, rejected {c['rejected'] or 'none'}")
    typer.echo(_diversity_line(m))
    typer.echo(f"written to:  {path / 'exercises'}")


@app.command("clean")
def clean_cmd(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, force: bool = False) -> None:
    """Deduplicate all training sources together and remove benchmark look-alikes."""
    ctx = run_context(config, set_, run_dir)
    path = ctx.run_dir
    m = _run_stage("clean", ctx, force)
    typer.echo(f"clean:       {m['counts']['kept']} of {m['counts']['in']} samples kept")
    for kind, f in m["funnel"].items():
        removed = {k: v for k, v in f.items() if k not in ("in", "kept")}
        typer.echo(f"  {kind:<10} {f['kept']} of {f['in']} kept; removed {removed or 'none'}")
    for bench, s in m["benchmarks"].items():
        typer.echo(f"  {bench:<10} {s['similar_to_training']} of {s['problems']} problems similar to the training data")
    typer.echo(f"written to:  {path / 'clean'}")


@app.command("tokenize")
def tokenize_cmd(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, force: bool = False) -> None:
    """Train (or load) the tokenizer and pack the clean data into token shards."""
    ctx = run_context(config, set_, run_dir)
    path = ctx.run_dir
    m = _run_stage("tokenize", ctx, force)
    for name, f in m["index"]["files"].items():
        typer.echo(
            f"{name:<13} {f['tokens']:>12,} tokens  {f['sequences']:>8,} sequences of {m['index']['seq_len']}"
            f"  from {f['documents']:,} documents"
        )
    typer.echo(f"vocabulary:   {m['index']['vocab_size']:,}  -> {path / 'tokens'}")


train_app = typer.Typer(help="Pretrain and finetune the phi-1 model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
ResumeOpt = Annotated[bool, typer.Option(help="continue from the last checkpoint of an interrupted run")]


def _train(
    phase: str, config: Path | None, set_: list[str] | None, run_dir: Path | None, resume: bool, force: bool
) -> None:
    import os

    from phi1.stages import train_phase

    m = train_phase(phase)(run_context(config, set_, run_dir), force, resume)
    if int(os.environ.get("RANK", "0")) == 0:
        val = m.get("final_val") or {}
        typer.echo(
            f"{phase}: {m['steps']} steps, loss {m['first_loss']} -> {m['final_loss']}, "
            f"val {val.get('val_loss')}, HumanEval solution loss {val.get('humaneval_loss')}"
        )
        typer.echo(f"{m['tokens_per_s']:,} tokens/s, MFU {m['mfu']}, checkpoint {m['checkpoint']}")


@train_app.command("pretrain")
def pretrain_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    force: bool = False,
) -> None:
    """Pretrain on curated code + textbook (under torchrun for several processes)."""
    _train("pretrain", config, set_, run_dir, resume, force)


@train_app.command("finetune")
def finetune_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    force: bool = False,
) -> None:
    """Finetune the pretrained model on the exercises."""
    _train("finetune", config, set_, run_dir, resume, force)


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="redo this stage and every one after it")] = None,
    only: Annotated[str | None, typer.Option(help="run this stage alone")] = None,
    until: Annotated[str | None, typer.Option(help="stop after this stage (e.g. tokenize: the data alone)")] = None,
    force: Annotated[bool, typer.Option(help="redo every stage")] = False,
    dry_run: Annotated[bool, typer.Option(help="print the plan (stages, budgets, teacher calls, GPU-hours)")] = False,
) -> None:
    """The whole recipe: curate, synth, clean, tokenize, pretrain, finetune, evaluate, report."""
    from phi1.pipeline import plan, run_pipeline

    if dry_run:
        from phi1.config import load_config

        cfg = load_config(config, set_)
        for line in plan(cfg, run_dir or Path("runs") / cfg.name):
            typer.echo(line)
        return
    cfg, path = setup_run(config, set_, run_dir)
    done = run_pipeline(cfg, path, from_stage=from_, only=only, force=force, until=until)
    if "report" in done:
        typer.echo(f"report: {path / 'report.md'}")
    else:
        typer.echo(f"{', '.join(done)}: {path}")


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Option("--run-dir", help="the run directory")]) -> None:
    """Write report.md and its figures from a run directory's manifests."""
    from phi1.report import write_report

    result = write_report(run_dir)
    typer.echo(f"report: {result['report']}")


# The commands beside the recipe's stages (phi1.cli_tools), after the stages' own in `phi1 --help`.
app.command("eval")(cli_tools.eval_cmd)
teacher_app.command("check")(cli_tools.teacher_check)
app.command("decontam")(cli_tools.decontam_cmd)
app.command("ablate")(cli_tools.ablate_cmd)
app.command("export")(cli_tools.export_cmd)
app.command("testscore")(cli_tools.testscore_cmd)
app.command("doctor")(cli_tools.doctor_cmd)
app.command("view")(cli_tools.view_cmd)


def main() -> None:
    # Usage errors are click's (exit 2); a Phi1Error is the user's input or environment: one line, exit 2.
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # phi1 draws its own progress bars
    except ImportError:
        pass
    try:
        app()
    except Phi1Error as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
