"""Synthetic data shard by shard: one shard per `synth.shard_size` seeds, written as soon as its rows are
known, with its own counts and teacher usage in the shard's metadata. Memory holds one shard's requests and
rows, never the set; an interrupted stage resumes at the first shard it had not written, and its manifest still
counts the whole stage (finished shards included). The shard size only lays the rows out (it is in no stage
key): each shard records its range of seeds, and a shard of another layout is made again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phi1.cards import CardStats
from phi1.minhash import mean_pairwise_similarity
from phi1.rundir import Stage, write_shard
from phi1.teacher import Usage

META_KEY = b"phi1.synth"


@dataclass
class ShardResult:
    rows: list[dict[str, Any]]
    counts: dict[str, Any]  # ints, or {reason: int} for the reasons rows were dropped
    usage: Usage = field(default_factory=Usage)


@dataclass
class Diversity:
    """How varied the set is, gathered shard by shard: distinct seed combinations, and the mean pairwise
    MinHash similarity of the first `limit` rows in seed order."""

    limit: int = 1000
    combos: set[tuple[str, str, str]] = field(default_factory=set)
    subtopics: set[tuple[str, str]] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)

    def add(self, table: pa.Table) -> None:
        cols = table.select(["topic", "subtopic", "audience", "style"]).to_pydict()
        self.combos.update(zip(cols["topic"], cols["audience"], cols["style"], strict=True))
        self.subtopics.update(zip(cols["topic"], cols["subtopic"], strict=True))
        if len(self.texts) < self.limit:
            self.texts += table.column("text").slice(0, self.limit - len(self.texts)).to_pylist()

    def result(self) -> dict[str, Any]:
        if not self.texts:
            return {}
        return {
            "distinct_topic_audience_style": len(self.combos),
            "distinct_topics": len({topic for topic, _ in self.subtopics}),
            "distinct_subtopics": len(self.subtopics),
            "mean_pairwise_minhash_similarity": round(mean_pairwise_similarity(self.texts), 4),
            "similarity_sample": len(self.texts),
        }


@dataclass
class Totals:
    counts: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    diversity: Diversity = field(default_factory=Diversity)


def write_shards(
    stage: Stage,
    n_seeds: int,
    shard_size: int,
    make_shard: Callable[[range], ShardResult],
    schema: pa.Schema,
    card: CardStats,
) -> Totals:
    """Run `make_shard` on each range of seed indices whose shard is not on disk yet, and add every shard,
    new or left by an interrupted run, into the stage's totals and card."""
    totals = Totals()
    starts = range(0, n_seeds, shard_size)
    for k, start in enumerate(starts):
        path, seeds = stage.shard_path(k), [start, min(n_seeds, start + shard_size)]
        meta = _meta(path)
        if meta.get("seeds") == seeds:
            table = pq.read_table(path)
        else:
            result = make_shard(range(*seeds))
            meta = {"seeds": seeds, "counts": result.counts, "usage": asdict(result.usage)}
            table = write_shard(path, result.rows, schema.with_metadata({META_KEY: json.dumps(meta).encode()}))
        _add_counts(totals.counts, meta["counts"])
        totals.usage.merge(Usage(**meta["usage"]))
        card.add(table)
        totals.diversity.add(table)
    if not starts:
        write_shard(stage.shard_path(0), [], schema)
    for path in stage.shards()[max(1, len(starts)) :]:  # left by a layout of smaller shards
        path.unlink()
    return totals


def _meta(path: Path) -> dict[str, Any]:
    """What a shard on disk records of itself ({} for none)."""
    if not path.exists():
        return {}
    try:
        return json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))
    except (OSError, ValueError, pa.ArrowInvalid):
        return {}


def _add_counts(into: dict[str, Any], counts: dict[str, Any]) -> None:
    for name, value in counts.items():
        if isinstance(value, dict):
            _add_counts(into.setdefault(name, {}), value)
        else:
            into[name] = into.get(name, 0) + value
