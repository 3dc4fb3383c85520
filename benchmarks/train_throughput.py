"""Training speed: tokens/s, MFU and peak memory of phi1's trainer against a plain, well-written Hugging Face
loop over `PhiForCausalLM` at the same model, sequence length, batch, dropout and precision (phi1's `auto`
choice for this device), with SDPA attention, fused AdamW and gradient clipping: the ratio measures what
phi1's trainer adds or costs (target >= 0.95). bf16 against fp32 is reported on its own, from the same
plain loop run in both precisions, with whether `auto` chose the faster.

MFU counts 6N + 12·L·d·T FLOPs per token (N: non-embedding parameters) against the device's peak: known
for common GPUs, `--peak-tflops` for others; on a CPU, the peak is measured here as the best linear-layer
throughput in the chosen precision (so CPU MFU is relative to what this CPU's matmul kernels reach).
Each side runs in a fresh process, on random tokens, after warm-up steps.

    .venv/bin/python benchmarks/train_throughput.py                          # CPU: small preset, target ratio >= 2
    python benchmarks/train_throughput.py --preset phi-1 --seq-len 2048 --micro-batch 8 --steps 12 --no-baseline
    python benchmarks/train_throughput.py --preset phi-1 --seq-len 2048 --micro-batch 16 --compile --kernels liger \
        --no-baseline                                                        # GPU: the fused loss (phi1[gpu])
    bash benchmarks/gpu_train_sweep.sh                                       # GPU: the whole grid, one script
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def make_run(run_dir: Path, vocab: int, seq_len: int, n_seq: int) -> None:
    """A run directory with random tokens and a (tiny) tokenizer: enough for `phi1 train` to run."""
    from phi1.tokenize import train_bpe

    (run_dir / "tokens").mkdir(parents=True)
    tok = train_bpe(["def f(x):\n    return x + 1\n"] * 50, 300)
    tok.save_pretrained(run_dir / "tokenizer")
    dtype = np.uint16 if vocab <= 65536 else np.uint32
    rng = np.random.default_rng(0)
    rng.integers(0, vocab, size=seq_len * n_seq, dtype=dtype).tofile(run_dir / "tokens" / "pretrain.bin")
    index = {
        "seq_len": seq_len,
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab,
        "eos_token_id": 0,
        "files": {"pretrain": {"tokens": seq_len * n_seq, "documents": n_seq, "sequences": n_seq}},
    }
    (run_dir / "tokens" / "index.json").write_text(json.dumps(index))
    for stage in ("tokens", "clean"):
        (run_dir / stage).mkdir(exist_ok=True)
        (run_dir / stage / "manifest.json").write_text(json.dumps({"status": "complete", "cache_key": "bench"}))


def cpu_peak_flops() -> float:
    """The best matmul throughput of this CPU in the precision phi1 trains in, the way training computes it
    (a linear layer, under autocast for bf16: plain bf16 tensors take a slower path), as its practical peak."""
    from phi1.precision import resolve

    precision = resolve("auto", "cpu")
    x, w = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    with torch.inference_mode(), precision.autocast():
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        for _ in range(5):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = max(best, 2 * 2048**3 / (time.perf_counter() - start))
    return best


def worker_phi1(args: argparse.Namespace) -> dict:
    from phi1.config import load_config
    from phi1.train import train

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        vocab = 51200 if args.preset in ("phi-1", "phi-1-small", "small") else 8192
        make_run(run, vocab, args.seq_len, max(64, args.micro_batch * (args.steps + 2)))
        overrides = {"vocab_size": vocab, **json.loads(args.overrides)}
        sets = [
            f"model.preset={args.preset}",
            f"model.overrides={json.dumps(overrides)}",
            f"pretrain.max_steps={args.steps}",
            f"pretrain.batch_size={args.micro_batch}",
            f"pretrain.micro_batch_size={args.micro_batch}",
            "pretrain.log_every=1",
            "pretrain.eval_every=100000",
            "pretrain.checkpoint_every=100000",
            "pretrain.humaneval_loss=false",
            "pretrain.warmup_steps=1",
            f"pretrain.compile={str(args.compile).lower()}",
            f"pretrain.activation_checkpointing={args.checkpointing}",
            f"pretrain.kernels={args.kernels}",
        ]
        if args.peak_tflops:
            sets.append(f"pretrain.peak_tflops={args.peak_tflops}")
        cfg = load_config(None, sets)
        manifest = train(run, cfg, "pretrain")
        rows = [json.loads(line) for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in rows if "loss" in r][args.warmup :]
    step_s = float(np.median([r["step_s"] for r in steps]))
    tokens = args.micro_batch * (args.seq_len - 1)
    return {
        "tokens_per_s": tokens / step_s,
        "memory_gb": max(r["memory_gb"] for r in steps),
        "loss": steps[-1]["loss"],
        "kernels": manifest["kernels"],
    }


def worker_plain(args: argparse.Namespace) -> dict:
    from transformers import PhiForCausalLM

    from phi1.model import model_config
    from phi1.precision import resolve

    vocab = 51200 if args.preset in ("phi-1", "phi-1-small", "small") else 8192
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve(args.precision, device)
    # The same model as phi1 trains, the recipe's dropout 0.1 included.
    config = model_config(
        args.preset, {"vocab_size": vocab, "attention_dropout": 0.1, "resid_pdrop": 0.1, **json.loads(args.overrides)}
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = PhiForCausalLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, fused=True)
    x = torch.randint(0, vocab, (args.micro_batch, args.seq_len), device=device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        with precision.autocast():
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = float(np.median(times[args.warmup :]))
    if device == "cuda":
        memory = torch.cuda.max_memory_allocated() / 1e9
    else:
        import resource

        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {
        "tokens_per_s": args.micro_batch * (args.seq_len - 1) / step_s,
        "memory_gb": memory,
        "loss": float(loss),
        "precision": precision.name,
    }


def run_worker(kind: str, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, *argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--overrides", default="{}")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpointing", nargs="?", const="true", default="false",
                        help="activation checkpointing: every layer, or (a number) the first k layers")  # fmt: skip
    parser.add_argument("--kernels", default="auto", choices=["auto", "torch", "liger", "cce"], help="train.kernels")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--worker", choices=["phi1", "plain"])
    parser.add_argument("--precision", default="auto", help="the plain loop's: auto, on (bf16) or off (fp32)")
    args = parser.parse_args()
    if args.worker:
        result = worker_phi1(args) if args.worker == "phi1" else worker_plain(args)
        print(json.dumps(result))
        return

    from phi1.model import count_parameters, flops_per_token, model_config

    vocab = 51200 if args.preset in ("phi-1", "phi-1-small", "small") else 8192
    config = model_config(args.preset, {"vocab_size": vocab, **json.loads(args.overrides)})
    counts = count_parameters(config)
    fpt = flops_per_token(config, args.seq_len, counts["non_embedding"])
    on_gpu = torch.cuda.is_available()
    if args.peak_tflops:
        peak, peak_note = args.peak_tflops * 1e12, "given"
    elif on_gpu:
        from phi1.train.distributed import peak_flops

        peak, peak_note = peak_flops(torch.device("cuda"), None), torch.cuda.get_device_name()
    else:
        peak, peak_note = cpu_peak_flops(), "measured matmul peak of this CPU in the chosen precision"
    argv = sys.argv[1:]
    ours = run_worker("phi1", argv)
    print(
        f"model: {args.preset} ({counts['total'] / 1e6:.1f}M parameters), seq {args.seq_len}, micro-batch "
        f"{args.micro_batch}, {'GPU ' + torch.cuda.get_device_name() if on_gpu else 'CPU'}"
    )
    peak_text = f"{peak / 1e12:.2f} TFLOP/s ({peak_note})" if peak else "unknown"
    print(f"FLOPs/token {fpt / 1e9:.3f} G; peak {peak_text}")

    def line(name: str, r: dict) -> str:
        mfu = f"{100 * r['tokens_per_s'] * fpt / peak:.1f}%" if peak else "n/a"
        return f"{name:<34} {r['tokens_per_s']:>10.0f} tokens/s  MFU {mfu:>6}  peak memory {r['memory_gb']:.2f} GB"

    from phi1.precision import resolve

    auto = resolve("auto", "cuda" if on_gpu else "cpu")
    print(f"precision: auto = {auto.name} ({auto.reason})")
    print(line(f"phi1 trainer ({auto.name}, {ours['kernels']} loss{', compiled' if args.compile else ''})", ours))
    if peak and on_gpu:  # the MFU target is for GPUs; on a CPU the figure is printed for reference
        mfu = ours["tokens_per_s"] * fpt / peak
        print(
            f"RESULT train_mfu_{args.preset} value={mfu:.3f} baseline=0.5 ratio={mfu / 0.5:.3f} target=0.5 "
            f"status={'met' if mfu >= 0.5 else 'missed'}"
        )
    if args.no_baseline:
        return
    plain = run_worker("plain", argv)
    print(line(f"plain HF loop ({plain['precision']})", plain))
    other = run_worker("plain", [*argv, "--precision", "off" if auto.bf16 else "on"])
    print(line(f"plain HF loop ({other['precision']})", other))
    ratio = ours["tokens_per_s"] / plain["tokens_per_s"]
    print(
        f"RESULT train_tokens_per_s value={ours['tokens_per_s']:.0f} baseline={plain['tokens_per_s']:.0f} "
        f"ratio={ratio:.3f} target=0.95 status={'met' if ratio >= 0.95 else 'missed'}"
    )
    bf16, fp32 = (plain, other) if auto.bf16 else (other, plain)
    speedup = bf16["tokens_per_s"] / fp32["tokens_per_s"]
    chose_faster = (speedup >= 1.0) == auto.bf16
    print(
        f"RESULT train_bf16_vs_fp32 value={speedup:.3f} baseline=1.0 ratio={speedup:.3f} target=1.0 "
        f"status={'met' if chose_faster else 'missed'} (auto chose {auto.name})"
    )


if __name__ == "__main__":
    main()
