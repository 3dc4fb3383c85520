"""Annotation: the teacher rates a random sample of the corpus for educational value, on the additive
0-5 scale of `phi1/prompts/annotate.md`. An answer without a parseable final score line is asked once
more (as another sample of the same prompt), then recorded as invalid."""

from __future__ import annotations

import ast
import hashlib
import heapq
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phi1 import prompts, pysource
from phi1.config import CurateConfig, ExecutorConfig, TeacherConfig
from phi1.executor import map_shards
from phi1.rundir import Stage, as_stage, write_shard
from phi1.teacher import Params, Request, Teacher, Usage

_SCORE = re.compile(r"Educational score:\s*\**\s*([0-5])\b", re.I)

SCHEMA = pa.schema([("id", pa.string()), ("score", pa.int64()), ("valid", pa.bool_()), ("answer", pa.string())])


def parse_score(answer: str) -> int | None:
    """The score on the answer's last 'Educational score: N' line, or None."""
    matches = _SCORE.findall(answer)
    return int(matches[-1]) if matches else None


def truncate_code(code: str, max_chars: int) -> str:
    """At most `max_chars` of `code`, cut after a whole statement, so that the cut file still parses (a cut
    mid-statement made valid files look broken: 148 of 210 long stdlib files scored 0 from it). Code that
    does not parse to begin with is cut at a line end."""
    if len(code) <= max_chars:
        return code
    lines = code.splitlines(keepends=True)
    ends = np.cumsum([len(line) for line in lines])
    fits = int(np.searchsorted(ends, max_chars, side="right"))  # whole lines within the limit
    try:
        tree = pysource.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "".join(lines[:fits])
    cuts = sorted({n.end_lineno for n in ast.walk(tree) if isinstance(n, ast.stmt) and n.end_lineno
                   and n.end_lineno <= fits}, reverse=True)  # fmt: skip
    for cut in cuts[:25]:  # the last statement end that leaves every open block complete
        prefix = "".join(lines[:cut])
        try:
            pysource.parse(prefix)
            return prefix
        except SyntaxError:
            continue
    # Whole top-level statements always parse; before the first one, only comments.
    top = [n.end_lineno for n in tree.body if n.end_lineno and n.end_lineno <= fits]
    return "".join(lines[: max(top) if top else (tree.body[0].lineno - 1 if tree.body else fits)])


RETRY_REMINDER = (
    "\n\nYour previous answer did not end with the required last line. Answer again, and end with exactly one "
    "line of the form `Educational score: N`, N an integer from 0 to 5."
)
RETRY_TEMPERATURE = 0.7  # a retry at temperature 0 of the same prompt gets the same answer back


def annotation_request(code: str, cfg: CurateConfig, retry: bool = False) -> Request:
    """The annotation prompt for one file; `retry`: a changed request (a reminder of the required last line,
    sampled at a temperature above 0), since asking the same thing again returns the same answer."""
    if len(code) > cfg.annotate_max_chars:
        code = truncate_code(code, cfg.annotate_max_chars) + "\n# ... (truncated)"
    prompt = prompts.render("annotate", code=code)
    if not retry:
        params = Params(temperature=cfg.annotate_temperature, max_tokens=cfg.annotate_max_tokens)
        return Request.chat(prompt, params=params)
    params = Params(temperature=max(cfg.annotate_temperature, RETRY_TEMPERATURE), max_tokens=cfg.annotate_max_tokens)
    return Request.chat(prompt + RETRY_REMINDER, params=params, sample=1)


def annotate(
    run_dir: Path,
    cfg: CurateConfig,
    teacher: Teacher,
    key: str | Stage,
    seed: int,
    force: bool = False,
    executor: ExecutorConfig | None = None,
    teacher_cfg: TeacherConfig | None = None,
) -> dict[str, Any]:
    """Rate a seeded sample of the corpus. On Ray (`executor`), each corpus shard's sample is one task with a
    teacher built from `teacher_cfg` and an answer record of its own (annotations/answers/): a task redone
    after its worker died gets its finished answers back from that record, and pays for none twice. A teacher
    that is on the cluster itself (hf replicas) is sent every request from here instead, through the cache."""
    stage = as_stage(run_dir, "annotations", key)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=force)
    chosen = sample_ids(sorted((run_dir / "corpus").glob("data-*.parquet")), cfg.annotate_samples, seed)
    usage = Usage()
    answers: dict[str, tuple[int | None, str]] = {}
    outcomes: Counter[str] = Counter()
    retried = 0
    with stage.timed("teacher_s"):
        if executor is not None and executor.kind == "ray" and not teacher.distributed:
            if teacher_cfg is None:
                raise ValueError("annotating on Ray needs the teacher's config, to build one per task")
            (stage.path / "answers").mkdir(exist_ok=True)
            jobs = [
                AnnotateJob(
                    str(path), tuple(rows), cfg, teacher_cfg, str(stage.path / "answers" / f"{path.stem}.sqlite")
                )
                for path, rows in chosen.items()
            ]
            for part in map_shards(annotate_shard, jobs, executor, "annotating", unit="shards"):
                answers.update(part.answers)
                outcomes.update(part.outcomes)
                usage.merge(part.usage)
                retried += part.retried
        else:
            items = [(doc_id, text) for path, rows in chosen.items() for doc_id, text in _texts(path, rows)]
            part = rate(teacher, cfg, items)
            answers, outcomes, usage, retried = part.answers, part.outcomes, part.usage, part.retried
    rows = [
        {"id": rid, "score": score, "valid": score is not None, "answer": answer}
        for rid, (score, answer) in sorted(answers.items())
    ]
    write_shard(stage.shard_path(0), rows, SCHEMA)
    valid = [r["score"] for r in rows if r["valid"]]
    return stage.finish(
        counts={"sampled": len(rows), "valid": len(valid), "invalid": len(rows) - len(valid), "retried": retried},
        outcomes=dict(outcomes),
        score_histogram={str(s): valid.count(s) for s in range(6)},
        teacher={**teacher.describe(), **usage.as_dict()},
        executor=executor.kind if executor is not None else "local",
    )


def sample_ids(shards: list[Path], n: int, seed: int) -> dict[Path, list[int]]:
    """A seeded sample of n documents, by shard (rows in order): the n whose seeded hash of the id is smallest,
    so the sample depends on neither shard order nor corpus size, and takes one pass over the id column."""
    heap: list[tuple[int, int, int]] = []  # (-key, shard, row): the n smallest keys
    held: set[int] = set()  # keys in the heap: a file's copies share its id, and are rated once
    for k, path in enumerate(shards):
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        for row, doc_id in enumerate(ids):
            key = int.from_bytes(hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest(), "little")
            if key in held:
                continue
            if len(heap) < n:
                heapq.heappush(heap, (-key, k, row))
            elif -key > heap[0][0]:
                held.discard(-heapq.heapreplace(heap, (-key, k, row))[0])
            else:
                continue
            held.add(key)
    out: dict[Path, list[int]] = {}
    for _, k, row in sorted(heap, key=lambda t: (t[1], t[2])):
        out.setdefault(shards[k], []).append(row)
    return out


def _texts(path: Path | str, rows: list[int] | tuple[int, ...]) -> list[tuple[str, str]]:
    table = pq.read_table(path, columns=["id", "text"]).take(list(rows))
    return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))


@dataclass
class Rated:
    answers: dict[str, tuple[int | None, str]]
    outcomes: Counter[str]
    usage: Usage
    retried: int


def rate(teacher: Teacher, cfg: CurateConfig, items: list[tuple[str, str]]) -> Rated:
    """The teacher's score of each (id, text), an answer without a score line asked once more."""
    text_of = dict(items)
    usage = Usage()
    answers: dict[str, tuple[int | None, str]] = {}
    requests = [annotation_request(text, cfg) for _, text in items]
    for request, (doc_id, _) in zip(requests, items, strict=True):
        request.metadata["id"] = doc_id
    retry: list[Request] = []
    outcomes: Counter[str] = Counter()
    for response in teacher.generate(requests, usage, progress="annotating"):
        score = parse_score(response.text) if response.ok else None
        rid = response.request.metadata["id"]
        answers[rid] = (score, response.text if response.ok else f"error: {response.error}")
        if not response.ok:  # the client already retried it as often as configured
            outcomes["teacher_error"] += 1
        elif score is None:
            again = annotation_request(text_of[rid], cfg, retry=True)
            again.metadata["id"] = rid
            retry.append(again)
        else:
            outcomes["scored"] += 1
    for response in teacher.generate(retry, usage, progress="annotating (retry)"):
        score = parse_score(response.text) if response.ok else None
        if score is not None:
            answers[response.request.metadata["id"]] = (score, response.text)
            outcomes["scored_on_retry"] += 1
        else:
            outcomes["no_score_line" if response.ok else "teacher_error_on_retry"] += 1
    return Rated(answers, outcomes, usage, len(retry))


@dataclass(frozen=True)
class AnnotateJob:
    path: str
    rows: tuple[int, ...]
    cfg: CurateConfig
    teacher: TeacherConfig
    record: str  # this shard's answer record (a teacher cache of its own)


def annotate_shard(job: AnnotateJob) -> Rated:
    from phi1.teacher import make_teacher

    teacher = make_teacher(job.teacher.model_copy(update={"cache_path": None}), job.record)
    return rate(teacher, job.cfg, _texts(job.path, job.rows))
