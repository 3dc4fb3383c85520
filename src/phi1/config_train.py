"""The config sections of training: the model (a preset from scratch or a user's own base), the two training
phases, and LoRA."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from phi1.config_base import Bf16, Names, Section


class ModelConfig(Section):
    """The model: a phi preset trained from scratch, or (`base`) a user's own causal LM to continue from."""

    preset: Literal["tiny", "small", "phi-1-small", "phi-1"] = "tiny"
    overrides: dict[str, Any] = {}  # any PhiConfig field, e.g. {num_hidden_layers: 2}; presets only
    # A local Hugging Face causal-LM folder or .gguf file (or one inside an installed package: `pkg:PACKAGE/REL`,
    # `phi1.config_base.named_path`): its tokenizer is the run's, pretraining continues from
    # its weights (pretrain.max_steps 0: finetuned as it is); `preset` and `overrides` are then unused.
    base: Annotated[str | None, Names("fingerprint")] = None


class TrainConfig(Section):
    """One training phase. Effective batch = micro_batch_size x grad accumulation x world size."""

    # The loss is summed over tokens and divided by the global batch's token count, so the micro-batch,
    # the world size and the parallelism change the arithmetic's order, not the result.
    EXECUTION_ONLY = frozenset(
        {
            "micro_batch_size",
            "compile",
            "kernels",
            "activation_checkpointing",
            "parallel",
            "device",
            "peak_tflops",
            "eval_every",
            "eval_batches",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "keep_steps",
        }
    )

    max_steps: int = Field(200, ge=0)  # 0: only with model.base (pretraining skipped, the base as it is)
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # linear decay ends at lr * min_lr_ratio
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-7, gt=0)
    batch_size: int = Field(32, ge=1)  # sequences per optimizer step, all ranks together
    micro_batch_size: int = Field(8, ge=1)  # sequences per forward pass per rank
    grad_clip: float = Field(1.0, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1)  # attention and residual dropout
    bf16: Bf16 = "auto"
    compile: bool = False
    kernels: Literal["auto", "torch", "liger", "cce"] = "auto"  # the loss: fused linear + cross-entropy on CUDA
    # Recompute activations in the backward pass instead of keeping them: true (every layer), or the first k
    # layers only, to buy back as much memory as a bigger micro-batch needs and recompute no more.
    activation_checkpointing: bool | Annotated[int, Field(ge=0)] = False
    loss_on: Literal["all", "solution"] = "all"  # finetuning: the loss on solution tokens only
    parallel: Literal["ddp", "fsdp"] = "ddp"
    eval_every: int = Field(50, ge=1)
    eval_batches: int = Field(8, ge=1)
    humaneval_loss: bool = True  # validation: the loss of HumanEval's canonical solutions given prompts
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    keep_steps: list[int] = []  # checkpoints kept for good (the paper's phi-1-base: step 24,000 of 36,000)
    keep_best: bool = False  # `final` holds the weights of the best validation loss, not the last step
    log_every: int = Field(10, ge=1)
    device: str | None = None
    peak_tflops: float | None = Field(None, gt=0)  # for MFU on devices phi1 does not know
    seed: int | None = None  # default: the run seed


class LoraConfig(Section):
    """Low-rank adapters (peft) instead of a full finetune; merged into the saved checkpoint."""

    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # module names to adapt: all-linear (every linear layer but the output layer), or names like q_proj, v_proj
    targets: list[str] = ["all-linear"]


class FinetuneConfig(TrainConfig):
    """Finetuning on the exercises: the paper's LR 1e-4, short warmup, weight decay 0.01, solution loss."""

    max_steps: int = Field(100, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    loss_on: Literal["all", "solution"] = "solution"
    keep_best: bool = True  # the paper kept the best of its finetuning checkpoints
    init_from: str = "final"  # the pretrained weights to start from: final, or a kept checkpoint (step-0024000)
    # How an exercise is written for the model: `completion` (the prompt, then the solution) or `chat` (the
    # tokenizer's chat template, asked exactly as `phi1 eval --chat` asks); auto: chat where the tokenizer has a
    # template. The loss is on the solution and the end of text (or of the turn) either way.
    format: Literal["auto", "completion", "chat"] = "auto"
    # `paper`: exercises joined by the end-of-text token and cut into sequences (the paper's packing);
    # `documents`: whole exercises packed into sequences, positions and attention reset at every exercise.
    packing: Literal["paper", "documents"] = "paper"
    lora: LoraConfig | None = None  # low-rank adapters; null: a full finetune
    # The token embedding (with tied embeddings, the output layer too) and the bottom `freeze_layers` decoder
    # layers keep the weights finetuning starts from: the backward pass stops above them, so half the layers
    # frozen is a third less compute a step (phi1.train.build.freeze_layers). 0: every weight is trained.
    freeze_layers: int = Field(0, ge=0)
    # WiSE-FT: the saved model is (1 - merge_base) x the finetuned weights + merge_base x the weights finetuning
    # started from (phi1.train.merge_base); 0 keeps the finetuned weights as they are.
    merge_base: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _one_way_to_train_part_of_the_model(self) -> FinetuneConfig:
        if self.freeze_layers and self.lora is not None:
            raise ValueError("freeze_layers and lora: both train part of the model; set one or the other")
        return self
