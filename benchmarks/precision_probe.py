"""Does `bf16: auto` pick the faster precision on this machine? phi1 decides bf16 vs fp32 once per device
(`phi1.precision`: CPU capability and flags, a measured probe where they do not settle it). This measures
both precisions where phi1 spends its CPU time and checks the choice against the measurement:

1. the probe's own matmul (one MiniLM feed-forward linear over 512 tokens), best of 20;
2. embedding 256 standard-library files with MiniLM (the curate stage's work), fp32 vs bf16 autocast.

value = time of the precision not chosen / time of the chosen one (>= 1.0: the faster one was chosen).
To see the AVX2-only behaviour on a CPU that has AVX512-BF16, cap torch and oneDNN:

    .venv/bin/python benchmarks/precision_probe.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/precision_probe.py
"""

from __future__ import annotations

import time

from phi1.curate.embed import encode, load_encoder
from phi1.curate.readers import SkipCounter, iter_corpus
from phi1.precision import cpu_capability, measure_bf16_speed, resolve


def result(name: str, chosen_bf16: bool, fp32_s: float, bf16_s: float) -> str:
    chosen, other = (bf16_s, fp32_s) if chosen_bf16 else (fp32_s, bf16_s)
    value = other / chosen
    status = "met" if value >= 1.0 else "missed"
    return (
        f"RESULT {name} value={value:.3f} baseline=1.0 ratio={value:.3f} target=1.0 status={status} "
        f"(chose {'bf16' if chosen_bf16 else 'fp32'}; fp32 {fp32_s * 1e3:.1f} ms, bf16 {bf16_s * 1e3:.1f} ms)"
    )


def embed_seconds(bf16: str, texts: list[str]) -> float:
    encoder = load_encoder("minilm", 256, "cpu", bf16)
    encode(encoder, texts[:32])  # warm-up: weights packed, kernels chosen
    start = time.perf_counter()
    encode(encoder, texts)
    return time.perf_counter() - start


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    choice = resolve("auto", "cpu")
    print(f"CPU capability {cpu_capability()}: auto = {choice.name} ({choice.reason})")
    probe = measure_bf16_speed(repeats=20)
    print(f"matmul probe: fp32 {probe['fp32_ms']:.3f} ms, bf16 {probe['bf16_ms']:.3f} ms")

    texts = [d.text for d in iter_corpus("stdlib", None, SkipCounter())][:256]
    fp32_s = embed_seconds("off", texts)
    bf16_s = embed_seconds("on", texts)
    print(f"embedding {len(texts)} files: fp32 {fp32_s:.2f} s, bf16 {bf16_s:.2f} s")

    print(result("precision_choice", choice.bf16, probe["fp32_ms"] / 1e3, probe["bf16_ms"] / 1e3))
    print(result("precision_choice_embedding", choice.bf16, fp32_s, bf16_s))


if __name__ == "__main__":
    main()
