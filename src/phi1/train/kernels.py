"""The training loss, computed by plain torch or by a fused linear + cross-entropy kernel.

With a 51,200-word vocabulary the fp32 logits of a phi-1 micro-batch (16 x 2048 tokens: 6.7 GB, and as much
again for their gradient) dominate a GPU's memory traffic. Liger Kernel's and Apple's cut-cross-entropy
kernels compute the loss and its gradients from the last hidden states and the output layer chunk by chunk,
never holding the logits. Both need CUDA (Triton); `pip install 'phi1[gpu]'` installs them.

`train.kernels`: `torch` (the plain loss, what CPU runs always use), `liger`, `cce`, or `auto` (Liger where
CUDA and the package are present, else cut-cross-entropy, else torch). Every path returns the same quantity:
the loss summed over the target tokens that are not -100 (the prompt of a solution-only finetune), which the
loop divides by the global batch's token count.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
import torch.nn.functional as F

from phi1.base_model import decoder
from phi1.errors import Phi1Error

Kernels = Literal["torch", "liger", "cce"]
PACKAGES: dict[str, str] = {"liger": "liger_kernel", "cce": "cut_cross_entropy"}


def installed(kernels: str) -> bool:
    return importlib.util.find_spec(PACKAGES[kernels]) is not None


def resolve_kernels(choice: str, device: torch.device) -> Kernels:
    """The loss path `choice` means on `device`, or one clear error when it cannot run there."""
    if choice == "torch":
        return "torch"
    on_cuda = device.type == "cuda"
    if choice == "auto":
        if on_cuda:
            for name in ("liger", "cce"):
                if installed(name):
                    return name  # type: ignore[return-value]
        return "torch"
    if choice not in PACKAGES:
        raise Phi1Error(f"train.kernels: {choice!r} is not one of auto, torch, liger, cce")
    if not on_cuda:
        raise Phi1Error(f"train.kernels: {choice} runs on a CUDA GPU only (this run is on {device}); use auto or torch")
    if not installed(choice):
        raise Phi1Error(f"train.kernels: {choice} needs the {PACKAGES[choice]} package: pip install 'phi1[gpu]'")
    return choice  # type: ignore[return-value]


class CausalLMLoss(torch.nn.Module):
    """A causal LM and its summed next-token loss in one forward, so that DDP, FSDP and torch.compile see the
    output layer's use by a fused kernel as part of the model. `targets[:, i]` is the token after
    `input_ids[:, i]` (or -100), for the first seq_len - 1 positions."""

    def __init__(
        self,
        lm: torch.nn.Module,
        kernels: Kernels,
        autocast: Callable[[], AbstractContextManager[Any]],
        fused: FusedLoss | None = None,
        labelled_only: bool = False,
    ) -> None:
        """`fused`: the kernel to call (default: the one `kernels` names; None with `torch`). `labelled_only`
        (the plain loss of a solution-only finetune, for a model whose logits are its output layer of its last
        hidden states): the output layer runs at the positions that have a target only. A prompt's logits
        are never used, and with a 49k vocabulary they are most of a small model's time and memory."""
        super().__init__()
        self.lm = lm
        self.autocast = autocast
        self._fused = fused or (_fused_loss(kernels) if kernels != "torch" else None)
        self.labelled_only = labelled_only and self._fused is None

    def forward(
        self, input_ids: torch.Tensor, targets: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`position_ids` restarting inside a row (documents packed whole) make transformers mask attention at
        each restart; no cache is kept (a cache would turn that detection off)."""
        inputs = {"input_ids": input_ids, "position_ids": position_ids, "use_cache": False}
        if self.labelled_only:
            keep = targets != -100
            with self.autocast():
                hidden = decoder(self.lm)(**inputs).last_hidden_state[:, :-1]
                logits = self.lm.get_output_embeddings()(hidden[keep])
            return F.cross_entropy(logits.float(), targets[keep], reduction="sum")
        if self._fused is None:
            with self.autocast():  # the forward only: backward runs in the types the forward chose
                logits = self.lm(**inputs).logits[:, :-1]
            return F.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
        head = self.lm.get_output_embeddings()
        with self.autocast():
            hidden = decoder(self.lm)(**inputs).last_hidden_state[:, :-1]
            return self._fused(hidden.reshape(-1, hidden.size(-1)), head.weight, head.bias, targets.reshape(-1))


FusedLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


def _fused_loss(kernels: Kernels) -> FusedLoss:
    """loss(hidden [T, d], weight [V, d], bias [V] or None, targets [T]): summed over targets != -100."""
    if kernels == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        # fp32 accumulation of the output layer's gradients (its weights are fp32 under autocast).
        liger = LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="sum", accum_dtype=torch.float32)

        def liger_loss(hidden: torch.Tensor, weight: torch.Tensor, bias: Any, targets: torch.Tensor) -> torch.Tensor:
            return liger(weight, hidden, targets, bias)

        return liger_loss

    from cut_cross_entropy import linear_cross_entropy

    def cce_loss(hidden: torch.Tensor, weight: torch.Tensor, bias: Any, targets: torch.Tensor) -> torch.Tensor:
        hidden, weight = fold_bias(hidden, weight.to(hidden.dtype), bias)  # its kernels want one dtype
        return linear_cross_entropy(hidden, weight, targets, ignore_index=-100, reduction="sum")

    return cce_loss


def fold_bias(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cut-cross-entropy has no bias (phi's output layer has one): a column of ones on the hidden states and
    the bias as one more column of the weights give the same logits."""
    if bias is None:
        return hidden, weight
    hidden = torch.cat([hidden, hidden.new_ones(hidden.size(0), 1)], dim=1)
    return hidden, torch.cat([weight, bias.to(weight.dtype)[:, None]], dim=1)
