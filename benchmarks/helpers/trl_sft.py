"""TRL's SFTTrainer on the exercises `benchmarks/peers.py` writes, in TRL's own virtual environment (never
phi1's): the peer of `phi1 run --only finetune`.

Two things are measured apart:
- the label mask: TRL tokenizes the exercises itself, in its prompt-completion form as plain text (the prompt
  exactly what phi1 gives the model at evaluation: the chat template's generation prompt and the opened code
  block; the completion the rest of the conversation as the template writes it), and its collator makes the
  labels of the first `--batch` of them (completion-only loss);
- the trainer: TRL trains on `--rows`, the very sequences phi1's finetune trains on, in phi1's order (a
  sequential sampler; `--micro` rows a forward, `--batch` a step), with phi1's schedule and optimizer settings,
  so the two losses can be compared step by step.

Prints one JSON line: the first batch's labels, every step's loss, learning rate and seconds, the tokens
trained on.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from datasets import Dataset
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import SequentialSampler
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer


def paper_lr(step: int, warmup: int, total: int) -> float:
    """phi1's schedule (`phi1.train.schedule.lr_factor`, copied: phi1 is not installed here): linear warmup
    reaching the peak at the warmup's last step, then linear decay. transformers' own linear schedule starts
    its warmup at 0, so its first step would not train at all."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))


class PaperSchedule(SFTTrainer):
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        warmup = self.args.warmup_steps
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda s: paper_lr(s, warmup, num_training_steps))
        return self.lr_scheduler


class InOrder(PaperSchedule):
    """The rows in the order given: phi1's batches, micro-batch by micro-batch."""

    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)


class StepTimes(TrainerCallback):
    """Seconds of each optimizer step, the forward/backward passes and the update (no set-up)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def config(args: argparse.Namespace, packing: bool, out: str) -> SFTConfig:
    return SFTConfig(
        output_dir=out,
        completion_only_loss=True,
        packing=packing,
        packing_strategy="wrapped",
        max_length=args.seq_len,
        per_device_train_batch_size=args.micro,
        gradient_accumulation_steps=args.batch // args.micro,
        max_steps=args.steps,
        learning_rate=args.lr,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.98,
        adam_epsilon=1e-7,
        max_grad_norm=1.0,
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="JSONL of {prompt, completion}: the label-mask check")
    parser.add_argument("--rows", required=True, help="JSONL of {input_ids, completion_mask}: what is trained on")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    with open(args.data) as fh:
        dataset = Dataset.from_list([json.loads(line) for line in fh])
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    # The label mask as TRL builds it, example by example: its collator over the first batch, not packed.
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)  # bf16: autocast, as phi1
    plain = SFTTrainer(model=model, args=config(args, False, args.out + "/plain"), train_dataset=dataset,
                       processing_class=tokenizer)  # fmt: skip
    first = [plain.train_dataset[i] for i in range(args.batch)]
    batch = plain.data_collator(first)
    labels = []
    for ids, lab, att in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        keep = att.bool()
        labels.append({"input_ids": ids[keep].tolist(), "labels": lab[keep].tolist()})
    del plain

    with open(args.rows) as fh:
        rows = Dataset.from_list([json.loads(line) for line in fh])
    times = StepTimes()
    trainer = InOrder(model=model, args=config(args, False, args.out), train_dataset=rows, processing_class=tokenizer,
                      callbacks=[times])  # fmt: skip
    trainer.train()
    history = trainer.state.log_history
    print(json.dumps({"first_batch": labels, "losses": [h["loss"] for h in history if "loss" in h],
                      "lrs": [h["learning_rate"] for h in history if "learning_rate" in h], "step_s": times.seconds,
                      "tokens": int(trainer.state.num_input_tokens_seen)}))  # fmt: skip


if __name__ == "__main__":
    main()
