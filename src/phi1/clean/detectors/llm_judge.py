"""`llm`: the teacher judges whether a sample is a benchmark problem rephrased (LMSYS, "Rethinking Benchmark
and Contamination for Language Models with Rephrased Samples", 2023: n-gram and embedding checks miss
rephrasings that an LLM reading both finds). Each sample's `k` nearest problems by embedding, and every
pair another detector scored without firing, go to the teacher with `phi1/prompts/judge.md`; its final line
is `Verdict: same` or `Verdict: different`. An answer without that line is asked once more, then recorded
as invalid, never as different. Folded in the driver, shard by shard, after the embedding detector has set
the shard's cosines. It needs an LLM teacher: with the offline teacher it does not run, and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phi1 import prompts
from phi1.clean.detectors.base import Detector
from phi1.clean.shards import read_texts
from phi1.teacher import Params, Request, Teacher, Usage

VERDICT = re.compile(r"^\W*verdict:\s*(same|different)\W*$", re.IGNORECASE)
ASKS = 2
MAX_CHARS = 6000  # of a sample shown to the judge: a long file is cut (its start holds most of its identity)


@dataclass(frozen=True)
class Judge:
    """What `clean.llm_judge` / `phi1 decontam --llm-judge` turn on."""

    teacher: Teacher
    k: int = 2  # nearest problems by embedding per sample


def off_reason(judge: Judge | None) -> str | None:
    """Why the judge does not run (None: it does)."""
    if judge is None:
        return "off (clean.llm_judge / --llm-judge)"
    if judge.teacher.backend == "offline":
        return "not run: the offline teacher is not an LLM and cannot judge (set teacher.backend)"
    return None


def parse_verdict(answer: str) -> str | None:
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    match = VERDICT.match(lines[-1]) if lines else None
    return match.group(1).lower() if match else None


@dataclass
class Stats:
    samples: int = 0
    candidates: int = 0
    same: int = 0
    different: int = 0
    invalid: int = 0
    usage: Usage = field(default_factory=Usage)
    invalid_pairs: list[tuple[int, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        per_sample = round(self.candidates / self.samples, 3) if self.samples else None
        return {"samples": self.samples, "candidates": self.candidates, "candidates_per_sample": per_sample,
                "same": self.same, "different": self.different, "invalid": self.invalid,
                "invalid_pairs": self.invalid_pairs[:50], "teacher": self.usage.as_dict()}  # fmt: skip


class LLMJudgeDetector(Detector):
    name = "llm"

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.stats = Stats()

    @classmethod
    def make(cls, vectors: Any = None, judge: Judge | None = None) -> LLMJudgeDetector | None:
        return cls(judge) if judge is not None and off_reason(judge) is None else None

    def fold(self, run: Any, k: int, rows: np.ndarray, scanned: Any, found: Any) -> None:
        shard = run.shards[k]
        docs = shard.offset + rows
        position = {int(d): i for i, d in enumerate(docs.tolist())}
        wanted: dict[tuple[int, int], str | None] = {}  # (doc, problem) -> the text shown (None: the sample's)
        if run.cosine is not None and run.cosine.size:
            for i, js in enumerate(np.argsort(-run.cosine, axis=1)[:, : self.judge.k].tolist()):
                wanted.update(((int(docs[i]), j), None) for j in js)
        if run.function_cosine is not None and run.function_cosine.size:  # corpus code: each function alone
            for view in run.function_cosine:  # by its source, and by its docstring (where it has one)
                top = np.argsort(-view, axis=1)[:, : self.judge.k]
                for f, row, js in zip(run.functions, view, top.tolist(), strict=True):
                    for j in js:
                        if row[j] > -1:  # a function without a docstring has no neighbours by it
                            wanted.setdefault((f.sample, j), f.source)
        for (doc, j), m in found.pairs.items():
            if doc in position and not m.detectors:  # scored by another detector, below its threshold
                wanted.setdefault((doc, j), None)
        self.stats.samples += len(rows)
        whole = sorted({position[d] for (d, _), text in wanted.items() if text is None})
        texts = dict(zip(whole, read_texts(shard.path, rows[whole]), strict=True)) if whole else {}
        pairs = sorted(wanted)
        shown = [wanted[p] or texts[position[p[0]]] for p in pairs]
        self.stats.candidates += len(pairs)
        asked = [(text, run.problems[j]) for text, (_, j) in zip(shown, pairs, strict=True)]
        for (doc, j), verdict in zip(pairs, judge_pairs(self.judge, asked, self.stats.usage), strict=True):
            if verdict is None:
                self.stats.invalid += 1
                self.stats.invalid_pairs.append((doc, j))
                continue
            same = verdict == "same"
            self.stats.same += same
            self.stats.different += not same
            found.add(doc, j, self.name, 1.0 if same else 0.0, same)

    def finish(self, run: Any, found: Any) -> None:
        found.notes[self.name] = self.stats.as_dict()


def judge_pairs(judge: Judge, pairs: list[tuple[str, Any]], usage: Usage) -> list[str | None]:
    """Each (sample text, benchmark problem) pair's verdict, `same` or `different`; None where no answer had
    the verdict line in ASKS tries. Usage is added to `usage`."""
    out: list[str | None] = [None] * len(pairs)
    todo = list(range(len(pairs)))
    for attempt in range(ASKS):
        requests = [judge_request(*pairs[n], attempt, n) for n in todo]
        for response in judge.teacher.generate(requests, usage, progress="decontaminating: llm"):
            n = response.request.metadata["n"]
            out[n] = parse_verdict(response.text) if response.ok else None
        todo = [n for n in todo if out[n] is None]
    return out


def judge_request(sample: str, problem: Any, attempt: int, n: int) -> Request:
    """The request that asks whether `sample` is `problem` (ask `attempt`; `n` only tags the answer)."""
    text = sample if len(sample) <= MAX_CHARS else sample[:MAX_CHARS] + "\n# ... (cut)"
    shown = problem.solution if problem.prompt in problem.solution else problem.prompt + "\n" + problem.solution
    body = prompts.render("judge", sample=text.strip(), problem=shown.strip())
    # A second ask is another sample of the prompt: its own cache entry, not the invalid answer again.
    return Request.chat(body, params=Params(temperature=0.0, max_tokens=300), sample=attempt, metadata={"n": n})
