"""llama.cpp's side of benchmarks/gguf_export.py, run by the Python that has llama-cpp-python (its own venv, never
phi1's): for each prompt, llama.cpp's own tokenization of the text, its greedy tokens from the given prompt ids,
the top-1 token at each position of a given continuation (teacher-forced), and the time of the greedy part.

    python benchmarks/helpers/llama_generate.py MODEL.gguf JOBS.json OUT.json --threads 2
JOBS.json: [{"text": str, "ids": [int], "reference": [int]}, ...], "tokens": int
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import llama_cpp
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("jobs")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    spec = json.loads(Path(args.jobs).read_text())
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=1024, n_threads=args.threads, n_batch=512, logits_all=True,
                          verbose=False)  # fmt: skip
    _greedy(llm, spec["jobs"][0]["ids"], spec["tokens"])  # warm-up, not timed
    rows, seconds = [], 0.0
    for job in spec["jobs"]:
        start = time.perf_counter()
        greedy = _greedy(llm, job["ids"], spec["tokens"])
        seconds += time.perf_counter() - start
        rows.append({"tokenized": llm.tokenize(job["text"].encode(), add_bos=False, special=False), "greedy": greedy,
                     "forced_top1": _forced(llm, job["ids"], job["reference"])})  # fmt: skip
    Path(args.out).write_text(json.dumps({"rows": rows, "seconds": seconds, "version": llama_cpp.__version__}))


def _greedy(llm: llama_cpp.Llama, ids: list[int], n: int) -> list[int]:
    """Argmax decoding, n tokens, no stop: the same rule as transformers' greedy with EOS ignored."""
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


def _forced(llm: llama_cpp.Llama, ids: list[int], reference: list[int]) -> list[int]:
    """The top-1 token at each position of `reference`, given the prompt and the reference before it."""
    llm.reset()
    llm.eval(ids + reference[:-1])
    start = len(ids) - 1
    return [int(np.argmax(llm.scores[start + i])) for i in range(len(reference))]


if __name__ == "__main__":
    main()
