"""`phi1 run`: the whole recipe from one config. Every stage is cached by its key: a rerun with nothing
changed does nothing, a changed section redoes its stage and those after it, and an interrupted run loses
no finished work (teacher answers come from the cache, training resumes from its last checkpoint)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from phi1.config import Config
from phi1.progress import console
from phi1.stages import STAGES, RunContext, chosen_stages

__all__ = ["STAGES", "chosen_stages", "plan", "run_pipeline"]


def run_pipeline(
    config: Config,
    run_dir: Path,
    from_stage: str | None = None,
    only: str | None = None,
    force: bool = False,
    until: str | None = None,
) -> dict[str, Any]:
    """Walk the registry's stages in order; each stage skips the steps whose key is unchanged."""
    chosen = chosen_stages(from_stage, only, until)
    ctx = RunContext(config, Path(run_dir))
    results: dict[str, Any] = {}
    for name in chosen:
        redo = force or from_stage is not None
        start = time.perf_counter()
        console.rule(f"[bold]{name}")
        results[name] = STAGES[name].run(ctx, redo)
        console.print(f"{name}: done in {time.perf_counter() - start:.1f}s")
    return results


# -- the plan (--dry-run) ----------------------------------------------------------------------------------


def plan(config: Config, run_dir: Path) -> list[str]:
    """What a run would do: stages, data and token budgets, teacher calls, training FLOPs and GPU-hours."""
    from phi1.model import count_parameters, flops_per_token, model_config

    c = config
    # A trained BPE sets the vocabulary; a given tokenizer keeps the preset's (phi-1: 51200).
    vocab = c.tokenize.vocab_size
    if c.model.base is not None:  # the user's own model, whatever its architecture
        from transformers import AutoConfig

        from phi1.base_model import resolve

        mcfg = AutoConfig.from_pretrained(resolve(c.model.base), local_files_only=True)
        model_name = f"{mcfg.model_type} base {c.model.base}"
    else:
        mcfg = model_config(
            c.model.preset, c.model.overrides, -(-vocab // 64) * 64 if c.tokenize.tokenizer == "train" else None
        )
        model_name = c.model.preset
    params = count_parameters(mcfg)
    seq = c.tokenize.seq_len
    fpt = flops_per_token(mcfg, seq, params["non_embedding"])
    pre_tokens = c.pretrain.max_steps * c.pretrain.batch_size * seq
    ft_tokens = c.finetune.max_steps * c.finetune.batch_size * seq
    flops = fpt * pre_tokens + flops_per_token(mcfg, seq, params["non_embedding"], c.finetune.freeze_layers) * ft_tokens
    peak = c.plan_gpu_peak_tflops * 1e12
    gpu_hours = flops / (peak * c.plan_mfu) / 3600
    teacher_calls = c.curate.annotate_samples + c.synth.textbook_samples + c.synth.exercise_samples
    prompt_tokens = c.curate.annotate_samples * 1800 + (c.synth.textbook_samples + c.synth.exercise_samples) * 350
    completion_tokens = (
        c.curate.annotate_samples * 120 + c.synth.textbook_samples * 900 + c.synth.exercise_samples * 400
    )
    cost = None
    if c.teacher.price_prompt_per_m is not None or c.teacher.price_completion_per_m is not None:
        cost = (
            prompt_tokens * (c.teacher.price_prompt_per_m or 0) / 1e6
            + completion_tokens * (c.teacher.price_completion_per_m or 0) / 1e6
        )
    corpus = c.corpus.path or "the Python standard library"
    lines = [
        f"run directory: {run_dir}",
        f"teacher:       {c.teacher.backend}:{c.teacher.model}"
        + (f" at {c.teacher.base_url}" if c.teacher.base_url else ""),
        f"1 curate       corpus {corpus} ({c.corpus.kind}); {c.curate.annotate_samples:,} files annotated; encoder "
        f"{c.curate.encoder}; keep by {c.curate.keep}",
        f"2 synth        {c.synth.textbook_samples:,} textbook sections, {c.synth.exercise_samples:,} exercises "
        "(each verified in the sandbox)",
        f"3 clean        MinHash {c.clean.minhash_bands}x{c.clean.minhash_rows}; decontamination: "
        f"{c.clean.ngram_n}-grams, embedding >= {c.clean.embed_threshold}, AST tau >= {c.clean.ast_threshold}",
        f"4 tokenize     {_tokenizer_name(c)}; sequences of {seq}; mix {c.tokenize.mix}",
        f"5 pretrain     {model_name}: {params['total'] / 1e6:,.1f}M parameters; "
        + (
            f"{c.pretrain.max_steps:,} steps x {c.pretrain.batch_size} x {seq} = {pre_tokens / 1e9:,.3f}B tokens; "
            f"lr {c.pretrain.lr}"
            if c.pretrain.max_steps
            else "none (max_steps 0): the base as it is"
        ),
        f"6 finetune     {c.finetune.max_steps:,} steps x {c.finetune.batch_size} x {seq} = "
        f"{ft_tokens / 1e6:,.1f}M tokens; lr {c.finetune.lr}; loss on {c.finetune.loss_on}; format "
        f"{c.finetune.format}, packing {c.finetune.packing}"
        + (f"; LoRA r={c.finetune.lora.r}" if c.finetune.lora else "; full finetune")
        + (f", its bottom {c.finetune.freeze_layers} layer(s) frozen" if c.finetune.freeze_layers else ""),
        f"7 evaluate     {', '.join(c.evaluate.benchmarks)}; n={c.evaluate.n}, temperature {c.evaluate.temperature}",
        "8 report       report.md + figures",
        f"teacher calls: ~{teacher_calls:,} (~{prompt_tokens / 1e6:,.1f}M prompt + ~{completion_tokens / 1e6:,.1f}M "
        f"completion tokens)" + (f", ~${cost:,.0f}" if cost is not None else ""),
        f"training:      {flops:.3g} FLOPs = ~{gpu_hours:,.1f} GPU-hours at {c.plan_mfu:.0%} MFU of "
        f"{c.plan_gpu_peak_tflops:g} TFLOP/s ({gpu_hours / max(1, c.plan_gpus):,.1f} h on {c.plan_gpus} GPUs)",
    ]
    here = _this_cpu(c, mcfg, flops) if params["total"] >= MIN_PARAMETERS_TO_ESTIMATE else None
    return lines + ([here] if here else [])


# A CPU trains at about this share of its matmul rate measured at the model's width: `make run`'s finetune ran
# at 219 GFLOP/s where the matmul ran at 380-400 (2-core AMD EPYC with AVX512-BF16, bf16), at about 100 where
# it ran at 145 (2-core AMD EPYC with AVX2 only, fp32).
CPU_TRAINING_SHARE = 0.6
# Smaller models train far below it (the 2M-parameter `tiny` at 16%: norms, softmax, the optimizer and Python
# cost more than its matmuls), so they get no estimate rather than a wrong one.
MIN_PARAMETERS_TO_ESTIMATE = 100e6


def _this_cpu(c: Config, mcfg: Any, flops: float) -> str | None:
    """Where the machine that plans has no GPU, about how long its CPU would take to train: the plan's GPU-hours
    mean little to someone trying the recipe on a CPU first."""
    import os

    import torch

    from phi1.precision import cpu_matmul_gflops, resolve

    if torch.cuda.is_available() or not flops:
        return None
    train = c.pretrain if c.pretrain.max_steps else c.finetune
    bf16 = resolve(train.bf16, "cpu").bf16
    width = getattr(mcfg, "hidden_size", None) or mcfg.n_embd
    inner = getattr(mcfg, "intermediate_size", None) or getattr(mcfg, "n_inner", None) or 4 * width
    rate = cpu_matmul_gflops((min(4096, train.micro_batch_size * c.tokenize.seq_len), width, inner), bf16)
    seconds = flops / (CPU_TRAINING_SHARE * rate * 1e9)
    if seconds < 120:
        took = f"{seconds:,.0f} s"
    elif seconds < 7200:
        took = f"{seconds / 60:,.0f} min"
    else:
        took = f"{seconds / 3600:,.1f} h"
    return (
        f"this machine:  no GPU; ~{took} of training on its {len(os.sched_getaffinity(0))} CPU cores "
        f"({'bf16' if bf16 else 'fp32'} matmuls measured at {rate:,.0f} GFLOP/s, training at about "
        f"{CPU_TRAINING_SHARE:.0%} of that)"
    )


def _tokenizer_name(c: Config) -> str:
    if c.model.base is not None:
        return f"the base model's ({c.model.base})"
    return f"BPE {c.tokenize.vocab_size}" if c.tokenize.tokenizer == "train" else c.tokenize.tokenizer
