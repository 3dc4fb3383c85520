"""How many prompt tokens phi1's decoding (`phi1.evaluate.decode`) should feed the model in one prefill forward
on this machine: every HumanEval prompt in SmolLM2-135M-Instruct's chat template (the demo's model and mode),
greedy, up to 384 new tokens, at the demo's batch size (64 rows), each batch prefilled whole (the baseline: one
forward per batch, as decoding did before) and in forwards of at most N tokens (rows x the longest prompt).

    .venv/bin/python benchmarks/decode_prefill.py [--budgets 2048] [--batch-size 64] [--problems 164]

Target per budget: at least 1.1x the baseline's speed with every answer equal (greedy both: only float
summation order differs). `phi1.evaluate.decode.decode`'s `prefill_tokens` default follows what this measures.
"""

from __future__ import annotations

import argparse

import torch

from helpers.chat_model import DEFAULT_BASE, chat_model, compare_decoding, humaneval_chat_prompts, timed_decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="2048", help="comma-separated prefill budgets in tokens per forward")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--base", default=DEFAULT_BASE)
    args = parser.parse_args()

    tok, model, prec, eos = chat_model(args.base)
    tids, prompts = humaneval_chat_prompts(tok, 0, args.problems)
    encoded = tok(prompts, add_special_tokens=False)["input_ids"]

    def run(budget: int) -> tuple[float, dict[int, list[int]]]:
        return timed_decode(tok, model, encoded, args.batch_size, args.max_new_tokens, eos, prefill_tokens=budget)

    print(f"{len(tids)} HumanEval prompts ({sum(map(len, encoded))} prompt tokens), batch {args.batch_size}, "
          f"{prec.dtype()}, {torch.get_num_threads()} threads")  # fmt: skip
    budgets = [int(b) for b in args.budgets.split(",")]

    def label(budget: int) -> str:
        return f"{budget} tokens a forward" if budget else "whole batches"

    target = 1.1  # at least this much faster than the baseline, with every answer equal
    for setting, seconds, base_s, same in compare_decoding(run, 0, budgets, label):
        ratio = base_s / seconds
        status = "met" if ratio >= target and same else "missed"
        print(f"RESULT decode_prefill_{setting} value={seconds:.1f} baseline={base_s:.1f} ratio={ratio:.2f} "
              f"target={target} status={status}")  # fmt: skip


if __name__ == "__main__":
    main()
