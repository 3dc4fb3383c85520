"""The model a phase trains: a fresh phi-1 model or a user's base model (`model.base`) for pretraining, the
pretrained one for finetuning, its embedding rows, the loss kernels it runs with, which layers stay frozen, which
recompute their activations, and (LoRA) its adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from phi1.base_model import (
    check_causal_lm,
    decoder_layers,
    dropout_settings,
    fused_loss_problem,
    resolve,
    width_and_depth,
)
from phi1.config import Config, TrainConfig
from phi1.errors import Phi1Error
from phi1.gguf import as_checkpoint
from phi1.model import model_config
from phi1.tokens import TokenShards
from phi1.train.distributed import Dist
from phi1.train.kernels import Kernels, resolve_kernels


def vocab_rows(config: Config, tokenizer: Any) -> int | None:
    """Embedding rows: a trained BPE's size rounded up to a multiple of 64 (friendlier matrix shapes); a given
    tokenizer keeps the preset's rows when it fits them (phi-1: codegen's 50,295 tokens in 51,200 rows, as
    microsoft/phi-1 has them), which is also what `--dry-run` counts."""
    rounded = -(-len(tokenizer) // 64) * 64
    if config.tokenize.tokenizer == "train" or "vocab_size" in config.model.overrides:
        return config.model.overrides.get("vocab_size", rounded)
    preset = model_config(config.model.preset).vocab_size
    return preset if len(tokenizer) <= preset else rounded


def init_path(run_dir: Path, cfg: TrainConfig) -> Path:
    """The pretrained weights finetuning starts from: `final`, or a kept checkpoint by name or path (any causal
    LM that transformers loads)."""
    name = getattr(cfg, "init_from", "final")
    pretrain = run_dir / "pretrain"
    for path in (pretrain / name, pretrain / "checkpoints" / name, as_checkpoint(name, "finetune.init_from")):
        if (path / "config.json").exists():
            check_causal_lm(path, "finetune.init_from")
            return path
    kept = sorted(p.name for p in (pretrain / "checkpoints").glob("step-*")) if pretrain.exists() else []
    raise Phi1Error(
        f"finetune.init_from: no pretrained model {name!r} in {pretrain} (run `phi1 train pretrain` first; "
        f"kept checkpoints: {', '.join(kept) or 'none'})"
    )


def build_model(
    run_dir: Path, config: Config, cfg: TrainConfig, phase: str, tokenizer: Any, data: TokenShards
) -> torch.nn.Module:
    """A fresh phi-1 model or the user's base model to pretrain, or the pretrained one to finetune, with the
    phase's dropout."""
    from transformers import AutoModelForCausalLM, PhiForCausalLM

    if phase == "pretrain" and config.model.base is None:
        mcfg = model_config(config.model.preset, config.model.overrides, vocab_rows(config, tokenizer),
                            tokenizer.eos_token_id)  # fmt: skip
        for k, v in dropout_settings(mcfg, cfg.dropout).items():
            setattr(mcfg, k, v)
        mcfg._attn_implementation = "sdpa"
        model = PhiForCausalLM(mcfg)
    else:
        path = resolve(config.model.base) if phase == "pretrain" else init_path(run_dir, cfg)
        from transformers import AutoConfig

        dropout = dropout_settings(AutoConfig.from_pretrained(path, local_files_only=True), cfg.dropout)
        # fp32 master weights whatever the checkpoint's dtype: autocast computes in bf16 where it pays.
        model = AutoModelForCausalLM.from_pretrained(
            path, attn_implementation="sdpa", dtype=torch.float32, local_files_only=True, **dropout
        )
    if data.vocab_size > model.config.vocab_size:
        raise Phi1Error(f"the tokenizer has {data.vocab_size} tokens, the model {model.config.vocab_size}")
    return model


def fused_or_plain(kernels: Kernels, cfg: TrainConfig, lm: Any) -> Kernels:
    """The loss path for this model: a fused kernel computes logits as hidden @ W + b, which a model that scales
    or caps its logits does not; auto falls back to the plain loss there, an explicit choice is refused."""
    problem = fused_loss_problem(lm.config) if kernels != "torch" else None
    if problem is None:
        return kernels
    if cfg.kernels == "auto":
        return "torch"
    raise Phi1Error(f"train.kernels: {kernels}: {problem}; use kernels auto or torch")


def head_at_labels(cfg: TrainConfig, dist: Dist, lm: Any) -> bool:
    """Whether the plain loss may run the output layer at the labelled positions only: a solution-only loss, a
    model whose logits are its output layer's (no scaling or capping), not FSDP (which gathers the output layer
    inside the model's own forward) and not torch.compile (the labelled count changes the shapes every batch)."""
    fsdp = dist.world > 1 and cfg.parallel == "fsdp"
    plain = fused_loss_problem(lm.config) is None and not fsdp and not cfg.compile
    return cfg.loss_on == "solution" and plain


def choose_kernels(cfg: TrainConfig, dist: Dist) -> Kernels:
    kernels = resolve_kernels(cfg.kernels, dist.device)
    if kernels != "torch" and dist.world > 1 and cfg.parallel == "fsdp":
        if cfg.kernels == "auto":
            return "torch"
        # The fused loss reads the output layer outside the LM's own forward, where FSDP2 gathers it.
        raise Phi1Error(f"train.kernels: {kernels} runs with parallel ddp, not fsdp; use kernels auto or torch")
    return kernels


def freeze_layers(lm: Any, n: int) -> None:
    """`finetune.freeze_layers`: the embeddings (token and any learned positions, below every layer; tied to it,
    the output layer) and the bottom `n` decoder layers keep their weights. Nothing below layer n then needs a
    gradient, so autograd's backward pass stops there: the finetune's compute drops by a third with half the
    layers frozen, and the optimizer keeps no state for them (phi1.train.distributed.parallelize)."""
    if not n:
        return
    for module in lm.modules():
        if isinstance(module, torch.nn.Embedding):
            module.requires_grad_(False)
    for layer in decoder_layers(lm)[:n]:
        layer.requires_grad_(False)


def check_frozen(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse, before the stage begins, a `finetune.freeze_layers` that leaves no layer to train."""
    n = getattr(cfg, "freeze_layers", 0)
    if not n:
        return
    from transformers import AutoConfig

    mcfg = AutoConfig.from_pretrained(init_path(run_dir, cfg), local_files_only=True)
    depth = width_and_depth(mcfg)[1]
    if n >= depth:
        raise Phi1Error(f"finetune.freeze_layers: {n} freezes all {depth} decoder layers of this "
                        f"{mcfg.model_type} model; at most {depth - 1}")  # fmt: skip


def checkpoint_layers(lm: Any, setting: bool | int) -> int:
    """Recompute the activations of the first `setting` decoder layers (True: every layer) in the backward
    pass instead of keeping them; the number of layers that do."""
    layers = decoder_layers(lm)
    n = len(layers) if setting is True else min(int(setting), len(layers))
    if n:
        # transformers >= 5.x names it activation_checkpointing_enable; older ones, gradient_checkpointing_enable.
        enable = getattr(lm, "activation_checkpointing_enable", None) or lm.gradient_checkpointing_enable
        enable()
        for layer in layers[n:]:
            layer.gradient_checkpointing = False
    return n
