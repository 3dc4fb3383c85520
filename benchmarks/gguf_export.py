"""`phi1 export` checked end to end with llama.cpp: the tiny run's finetuned checkpoint exported to GGUF (f16
and q8_0), loaded by llama.cpp (llama-cpp-python, in its own venv: it builds llama.cpp from source, several
minutes the first time), and compared with transformers on the same checkpoint, in the same run:

- greedy tokens: N new tokens from each of the first P HumanEval prompts (the same prompt ids on both sides,
  no stop at end of text). Target: f16 gives transformers' tokens at every position; q8_0's top-1 token,
  teacher-forced along transformers' greedy continuation, agrees at >= 95% of positions;
- tokenization: llama.cpp's own tokenization of each prompt text equals the checkpoint's tokenizer's;
- speed: generated tokens per second (prompt and greedy decoding, batch 1, this CPU's threads), llama.cpp
  against transformers (fp32, the same greedy loop with its KV cache); target >= 1x.

    .venv/bin/python benchmarks/gguf_export.py [--checkpoint runs/tiny/finetune/final] [--prompts 10]
        [--tokens 32] [--llama-python .venv-llama/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA_VENV = ROOT / ".venv-llama"


def _llama_python(given: str | None) -> Path:
    """The Python with llama-cpp-python: given, or .venv-llama, made here the first time."""
    if given:
        return Path(given)
    python = LLAMA_VENV / "bin" / "python"
    probe = [str(python), "-c", "import llama_cpp"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"building llama.cpp into {LLAMA_VENV} (llama-cpp-python from source: several minutes, once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LLAMA_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "llama-cpp-python", "numpy"], check=True)
    return python


def _jobs(checkpoint: Path, prompts: int) -> list[dict]:
    from transformers import AutoTokenizer

    from phi1.evaluate import benchmarks

    tok = AutoTokenizer.from_pretrained(checkpoint)
    texts = [p.prompt for p in list(benchmarks.load("humaneval").problems.values())[:prompts]]
    return [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]


def _transformers(checkpoint: Path, jobs: list[dict], n: int) -> tuple[list[list[int]], float]:
    """Greedy tokens and the seconds they took (after one warm-up), fp32, batch 1, with the KV cache: the same
    argmax loop as llama.cpp's side. (Not generate(): it stops at EOS whatever eos_token_id it is given, and
    min_new_tokens masks EOS out of the argmax, which llama.cpp's plain argmax would then pick.)"""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()

    def run(ids: list[int]) -> list[int]:
        tokens, kept, x = [], {}, torch.tensor([ids])
        with torch.inference_mode():
            for _ in range(n):
                out = model(input_ids=x, use_cache=True, **kept)
                key = "cache" if "cache" in out else "past_key_values"  # transformers 5 renamed it
                kept, token = {key: out[key]}, int(out.logits[0, -1].argmax())
                tokens.append(token)
                x = torch.tensor([[token]])
        return tokens

    run(jobs[0]["ids"])
    start = time.perf_counter()
    tokens = [run(j["ids"]) for j in jobs]
    return tokens, time.perf_counter() - start


def _llama(python: Path, model: Path, jobs: list[dict], n: int, tmp: Path) -> dict:
    spec, out = tmp / f"{model.stem}-jobs.json", tmp / f"{model.stem}-out.json"
    spec.write_text(json.dumps({"jobs": jobs, "tokens": n}))
    threads = str(len(os.sched_getaffinity(0)))
    helper = ROOT / "benchmarks" / "helpers" / "llama_generate.py"
    subprocess.run([str(python), str(helper), str(model), str(spec), str(out), "--threads", threads], check=True)
    return json.loads(out.read_text())


def _result(name: str, value: float, baseline: float, target: float, fmt: str = ".3f") -> None:
    ratio = value / baseline if baseline else 0.0
    status = "met" if (ratio if name.endswith("per_s") else value) >= target else "missed"
    print(f"RESULT {name} value={value:{fmt}} baseline={baseline:{fmt}} ratio={ratio:.2f} target={target} "
          f"status={status}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "runs" / "tiny" / "finetune" / "final"))
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--llama-python", default=None)
    args = ap.parse_args()
    checkpoint = Path(args.checkpoint)
    if not (checkpoint / "config.json").exists():
        sys.exit(f"{checkpoint}: no checkpoint (make run writes the tiny run's; or pass --checkpoint)")
    from phi1.export import export_gguf

    python = _llama_python(args.llama_python)
    jobs = _jobs(checkpoint, args.prompts)
    reference, hf_seconds = _transformers(checkpoint, jobs, args.tokens)
    for job, ref in zip(jobs, reference, strict=True):
        job["reference"] = ref
    total = len(jobs) * args.tokens
    hf_rate = total / hf_seconds
    print(f"checkpoint {checkpoint}; {len(jobs)} HumanEval prompts x {args.tokens} greedy tokens")
    print(f"transformers (fp32): {hf_rate:.1f} tokens/s")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for dtype in ("f16", "q8_0"):
            done = export_gguf(checkpoint, tmp / f"model-{dtype}.gguf", dtype)
            got = _llama(python, done.path, jobs, args.tokens, tmp)
            rate = total / got["seconds"]
            same = sum(a == b for r, ref in zip(got["rows"], reference, strict=True)
                       for a, b in zip(r["greedy"], ref, strict=True)) / total  # fmt: skip
            forced = sum(a == b for r, ref in zip(got["rows"], reference, strict=True)
                         for a, b in zip(r["forced_top1"], ref, strict=True)) / total  # fmt: skip
            tokenized = sum(r["tokenized"] == j["ids"] for r, j in zip(got["rows"], jobs, strict=True)) / len(jobs)
            print(f"llama.cpp {got['version']} {dtype} ({done.bytes / 1e6:.1f} MB): {rate:.1f} tokens/s; greedy "
                  f"tokens equal {same:.1%}, teacher-forced top-1 {forced:.1%}, prompts tokenized alike "
                  f"{tokenized:.0%}")  # fmt: skip
            if dtype == "f16":
                _result("gguf_f16_greedy_tokens_equal", same, 1.0, 1.0)
                _result("gguf_tokenization_equal", tokenized, 1.0, 1.0)
            else:
                _result("gguf_q8_0_top1_agreement", forced, 1.0, 0.95)
            _result(f"llama_cpp_{dtype}_tokens_per_s", rate, hf_rate, 1.0, ".1f")


if __name__ == "__main__":
    main()
