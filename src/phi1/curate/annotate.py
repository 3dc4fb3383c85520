"""Annotation: the teacher rates a random sample of the corpus for educational value, on the additive
0-5 scale of `phi1/prompts/annotate.md`. An answer without a parseable final score line is asked once
more (as another sample of the same prompt), then recorded as invalid."""

from __future__ import annotations

import ast
import random
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phi1 import prompts
from phi1.config import CurateConfig
from phi1.rundir import Stage, read_table, stage_key, write_shard
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "".join(lines[:fits])
    cuts = sorted({n.end_lineno for n in ast.walk(tree) if isinstance(n, ast.stmt) and n.end_lineno
                   and n.end_lineno <= fits}, reverse=True)  # fmt: skip
    for cut in cuts[:25]:  # the last statement end that leaves every open block complete
        prefix = "".join(lines[:cut])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(prefix)
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


def annotate_key(cfg: CurateConfig, corpus_key: str, teacher: Teacher, seed: int) -> str:
    fields = {
        k: getattr(cfg, k)
        for k in ("annotate_samples", "annotate_max_chars", "annotate_temperature", "annotate_max_tokens")
    }
    fields.update(teacher=f"{teacher.backend}:{teacher.model}", seed=seed, prompt=prompts.template("annotate"))
    return stage_key(fields, [corpus_key])


def annotate(
    run_dir: Path, cfg: CurateConfig, teacher: Teacher, corpus_key: str, seed: int, force: bool = False
) -> dict[str, Any]:
    stage = Stage(run_dir, "annotations", annotate_key(cfg, corpus_key, teacher, seed))
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {"corpus": corpus_key}, force=force)
    corpus = read_table(run_dir / "corpus", ["id", "text"])
    ids, texts = corpus.column("id").to_pylist(), corpus.column("text").to_pylist()
    text_of = dict(zip(ids, texts, strict=True))
    order = sorted(range(len(ids)), key=lambda i: ids[i])  # a sample independent of shard order
    chosen = random.Random(seed).sample(order, min(cfg.annotate_samples, len(order)))
    usage = Usage()
    answers: dict[str, tuple[int | None, str]] = {}
    with stage.timed("teacher_s"):
        requests = [annotation_request(texts[i], cfg) for i in chosen]
        for i, request in enumerate(requests):
            request.metadata["id"] = ids[chosen[i]]
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
    rows = [
        {"id": rid, "score": score, "valid": score is not None, "answer": answer}
        for rid, (score, answer) in sorted(answers.items())
    ]
    write_shard(stage.shard_path(0), rows, SCHEMA)
    valid = [r["score"] for r in rows if r["valid"]]
    return stage.finish(
        counts={"sampled": len(chosen), "valid": len(valid), "invalid": len(rows) - len(valid), "retried": len(retry)},
        outcomes=dict(outcomes),
        score_histogram={str(s): valid.count(s) for s in range(6)},
        teacher={**teacher.describe(), **usage.as_dict()},
    )
