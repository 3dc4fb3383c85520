"""The model a phase trains: a fresh phi-1 model for pretraining or the pretrained one for finetuning, its
embedding rows, the loss kernels it runs with, and which layers recompute their activations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

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
    """The pretrained weights finetuning starts from: `final`, or a kept checkpoint by name or path."""
    name = getattr(cfg, "init_from", "final")
    pretrain = run_dir / "pretrain"
    for path in (pretrain / name, pretrain / "checkpoints" / name, as_checkpoint(name, "finetune.init_from")):
        if (path / "config.json").exists():
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            if model_type != "phi":
                raise Phi1Error(f"finetune.init_from: {name} is a {model_type} model; phi1 finetunes phi models")
            return path
    kept = sorted(p.name for p in (pretrain / "checkpoints").glob("step-*")) if pretrain.exists() else []
    raise Phi1Error(
        f"finetune.init_from: no pretrained model {name!r} in {pretrain} (run `phi1 train pretrain` first; "
        f"kept checkpoints: {', '.join(kept) or 'none'})"
    )


def build_model(
    run_dir: Path, config: Config, cfg: TrainConfig, phase: str, tokenizer: Any, data: TokenShards
) -> torch.nn.Module:
    """A fresh phi-1 model to pretrain, or the pretrained one to finetune, with the phase's dropout."""
    from transformers import PhiForCausalLM

    dropout = {"attention_dropout": cfg.dropout, "resid_pdrop": cfg.dropout, "embd_pdrop": 0.0}
    if phase == "pretrain":
        mcfg = model_config(config.model.preset, config.model.overrides, vocab_rows(config, tokenizer),
                            tokenizer.eos_token_id)  # fmt: skip
        for k, v in dropout.items():
            setattr(mcfg, k, v)
        mcfg._attn_implementation = "sdpa"
        model = PhiForCausalLM(mcfg)
    else:
        base = init_path(run_dir, cfg)
        model = PhiForCausalLM.from_pretrained(base, attn_implementation="sdpa", **dropout)
    if data.vocab_size > model.config.vocab_size:
        raise Phi1Error(f"the tokenizer has {data.vocab_size} tokens, the model {model.config.vocab_size}")
    return model


def choose_kernels(cfg: TrainConfig, dist: Dist) -> Kernels:
    kernels = resolve_kernels(cfg.kernels, dist.device)
    if kernels != "torch" and dist.world > 1 and cfg.parallel == "fsdp":
        if cfg.kernels == "auto":
            return "torch"
        # The fused loss reads the output layer outside the LM's own forward, where FSDP2 gathers it.
        raise Phi1Error(f"train.kernels: {kernels} runs with parallel ddp, not fsdp; use kernels auto or torch")
    return kernels


def checkpoint_layers(lm: Any, setting: bool | int) -> int:
    """Recompute the activations of the first `setting` decoder layers (True: every layer) in the backward
    pass instead of keeping them; the number of layers that do."""
    layers = lm.model.layers
    n = len(layers) if setting is True else min(int(setting), len(layers))
    if n:
        # transformers >= 5.x names it activation_checkpointing_enable; older ones, gradient_checkpointing_enable.
        enable = getattr(lm, "activation_checkpointing_enable", None) or lm.gradient_checkpointing_enable
        enable()
        for layer in layers[n:]:
            layer.gradient_checkpointing = False
    return n
