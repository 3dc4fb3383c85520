"""How many rows phi1's decoding (`phi1.evaluate.decode`) should run at once on this machine: the same HumanEval
prompts decoded at the baseline batch size and at others, greedy, in SmolLM2-135M-Instruct's chat template (the
demo's model and mode), with the seconds, the tokens and whether every answer is the baseline's.

Default: the 96 prompts after the 40 shortest (ranks 40-135 by length: the middle of HumanEval, where answers
are long enough for rows to finish at different times), up to 384 new tokens (the demo's limit).

    .venv/bin/python benchmarks/decode_batch.py [--baseline 32] [--sizes 64] [--first 40] [--problems 96]

Target per size: no slower than the baseline (ratio >= 1.0) with every answer equal (greedy both: only float
summation order differs). `configs/demo.yaml`'s `evaluate.batch_size` follows what this measures.
"""

from __future__ import annotations

import argparse

import torch

from helpers.chat_model import DEFAULT_BASE, chat_model, compare_decoding, humaneval_chat_prompts, timed_decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=int, default=32)
    parser.add_argument("--sizes", default="64", help="comma-separated batch sizes to set beside the baseline")
    parser.add_argument("--first", type=int, default=40, help="skip this many of the shortest prompts")
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--base", default=DEFAULT_BASE)
    args = parser.parse_args()

    tok, model, prec, eos = chat_model(args.base)
    tids, prompts = humaneval_chat_prompts(tok, args.first, args.problems)
    encoded = tok(prompts, add_special_tokens=False)["input_ids"]

    def run(batch: int) -> tuple[float, dict[int, list[int]]]:
        return timed_decode(tok, model, encoded, batch, args.max_new_tokens, eos)

    print(f"{len(tids)} HumanEval prompts (ranks {args.first}-{args.first + len(tids) - 1} by length), "
          f"{prec.dtype()}, {torch.get_num_threads()} threads")  # fmt: skip
    sizes = [int(s) for s in args.sizes.split(",")]
    target = 1.0  # at least this much faster than the baseline, with every answer equal
    for setting, seconds, base_s, same in compare_decoding(run, args.baseline, sizes, lambda size: f"batch {size}"):
        ratio = base_s / seconds
        status = "met" if ratio >= target and same else "missed"
        print(f"RESULT decode_batch_{setting} value={seconds:.1f} baseline={base_s:.1f} ratio={ratio:.2f} "
              f"target={target} status={status}")  # fmt: skip


if __name__ == "__main__":
    main()
