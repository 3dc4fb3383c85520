"""`phi1 synth textbook`: sections of a Python textbook, prose interleaved with code, one per seed. A
section whose code does not parse is dropped and counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from phi1 import prompts, pysource
from phi1.cards import CardStats, write_card
from phi1.config import Config
from phi1.markdown import code_blocks
from phi1.records import content_id
from phi1.rundir import open_step
from phi1.synth.seeds import Seed, make_seeds
from phi1.synth.shards import ShardResult, write_shards
from phi1.teacher import Params, Request, Teacher

SEED_COLUMNS = ("topic", "subtopic", "audience", "style")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("topic", pa.string()),
        ("subtopic", pa.string()),
        ("audience", pa.string()),
        ("style", pa.string()),
        ("function_name", pa.string()),
        ("words", pa.string()),
        ("seed_index", pa.int64()),
        ("code_blocks", pa.int64()),
    ]
)


def textbook_request(seed: Seed, temperature: float, max_tokens: int) -> Request:
    prompt = prompts.render(
        "textbook",
        topic=seed.topic,
        subtopic=seed.subtopic,
        audience=seed.audience,
        style=seed.style,
        function_name=seed.function_name,
        words=", ".join(seed.words),
    )
    return Request.chat(prompt, params=Params(temperature=temperature, max_tokens=max_tokens), sample=seed.index)


def check_section(text: str) -> tuple[str | None, int]:
    """(reason to drop, number of code blocks)."""
    if not text.strip():
        return "empty", 0
    blocks = code_blocks(text)
    if not blocks:
        return "no_code", 0
    for block in blocks:
        try:
            pysource.parse(block)
        except (SyntaxError, ValueError):
            return "code_syntax", len(blocks)
    return None, len(blocks)


def synth_textbook(run_dir: Path, config: Config, teacher: Teacher, force: bool = False) -> dict[str, Any]:
    cfg = config.synth
    stage = open_step(run_dir, "textbook", config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=force)

    def shard(indices: range) -> ShardResult:
        seeds = make_seeds(cfg, indices.stop, config.seed, "textbook", start=indices.start)
        by_index = {s.index: s for s in seeds}
        result = ShardResult([], {"requested": len(seeds), "kept": 0, "dropped": {}})
        with stage.timed("teacher_s"):
            requests = [textbook_request(s, cfg.temperature, cfg.max_tokens) for s in seeds]
            for response in teacher.generate(requests, result.usage, progress="writing the textbook"):
                seed = by_index[response.request.sample]
                reason, n_blocks = ("teacher_error", 0) if not response.ok else check_section(response.text)
                if reason:
                    result.counts["dropped"][reason] = result.counts["dropped"].get(reason, 0) + 1
                    continue
                result.rows.append(section_row(seed, response.text, n_blocks))
        result.rows.sort(key=lambda r: r["seed_index"])
        result.counts["kept"] = len(result.rows)
        return result

    card = CardStats(SEED_COLUMNS)
    totals = write_shards(stage, cfg.textbook_samples, cfg.shard_size, shard, SCHEMA, card)
    manifest = stage.finish(
        counts=totals.counts or {"requested": 0, "kept": 0, "dropped": {}},
        diversity=totals.diversity.result(),
        teacher={**teacher.describe(), **totals.usage.as_dict()},
    )
    write_card(
        stage.path,
        "Synthetic textbook",
        f"Textbook sections written by the teacher `{teacher.backend}:{teacher.model}` from "
        "`phi1/prompts/textbook.md`, one per diversity seed (topic, subtopic, audience, style, a "
        "function name and random words). Sections whose code does not parse were dropped.",
        card,
        manifest,
    )
    return manifest


def section_row(seed: Seed, answer: str, n_blocks: int) -> dict[str, Any]:
    text = answer.strip() + "\n"
    return {
        "id": content_id(text),
        "text": text,
        "source": "textbook",
        "kind": "textbook",
        **{k: v for k, v in seed.columns().items() if k != "index" and k != "constraint"},
        "seed_index": seed.index,
        "code_blocks": n_blocks,
    }
