"""Diversity seeds: a topic tree crossed with audiences, styles and random constraints (random words and
a function name, as in TinyStories and the paper). Seeds are a pure function of the run seed and the
sample index, so a run is reproducible and a longer run extends a shorter one."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import yaml

from phi1.config import SynthConfig
from phi1.errors import Phi1Error

WORDS = """apple anchor basket beacon bicycle blanket bridge candle canyon carpet castle cedar cherry cliff clock cloud
compass copper coral cotton crystal daisy desert diamond dolphin dragon eagle ember engine feather fern
festival forest fountain garden glacier harbor harvest helmet honey island ivory jacket jungle kettle ladder
lantern lemon library lighthouse lizard magnet maple marble meadow melody mirror mountain needle ocean orbit
orchard otter paddle parrot pebble pepper piano pillow planet pocket pumpkin quartz rabbit rainbow river
rocket saddle sailor shadow shell silver sparrow spider spring station storm sugar summit sunset tiger
timber tomato tower trumpet tulip tunnel valley velvet violin volcano wagon walnut whale willow window
winter wizard yacht zebra""".split()  # noqa: SIM905 - a word list reads best as text

VERBS = [
    "count",
    "find",
    "merge",
    "build",
    "check",
    "sum",
    "filter",
    "group",
    "rank",
    "split",
    "normalize",
    "encode",
    "parse",
    "score",
    "track",
    "collect",
    "compute",
    "detect",
    "format",
    "measure",
    "pair",
    "reverse",
    "select",
    "sort",
    "summarize",
    "validate",
    "convert",
    "combine",
    "estimate",
    "label",
]

NOUNS = [
    "items",
    "scores",
    "words",
    "pairs",
    "records",
    "values",
    "steps",
    "tokens",
    "levels",
    "orders",
    "readings",
    "prices",
    "grades",
    "points",
    "events",
    "names",
    "visits",
    "blocks",
    "cells",
    "trips",
    "digits",
    "letters",
    "intervals",
    "matches",
    "votes",
    "moves",
    "samples",
    "totals",
    "tasks",
    "edges",
]

CONSTRAINTS = [
    "use a while loop",
    "do not import anything",
    "use a dictionary",
    "handle an empty input gracefully",
    "use recursion",
    "use a list comprehension",
    "run in linear time",
    "do not modify the input",
    "use a helper function",
    "return early for edge cases",
    "use tuple unpacking",
    "use sorted with a key",
    "use a set",
    "work for negative numbers too",
    "use enumerate",
    "use string methods",
    "avoid nested loops",
    "use a generator expression",
    "be case-insensitive",
    "use integer arithmetic only",
]


@dataclass(frozen=True)
class Seed:
    index: int
    topic: str
    subtopic: str
    audience: str
    style: str
    function_name: str
    words: tuple[str, ...]
    constraint: str

    def columns(self) -> dict[str, object]:
        d = asdict(self)
        d["words"] = ", ".join(self.words)
        return d


def load_topics(path: str | None) -> dict[str, list[str]]:
    if path is None:
        text = (resources.files("phi1.synth") / "topics.yaml").read_text(encoding="utf-8")
        where = "phi1/synth/topics.yaml"
    else:
        if not Path(path).exists():
            raise Phi1Error(f"synth.topics_file: {path}: no such file")
        text, where = Path(path).read_text(encoding="utf-8"), path
    try:
        topics = (yaml.safe_load(text) or {}).get("topics")
    except (yaml.YAMLError, AttributeError) as exc:
        raise Phi1Error(f"{where}: not a topics file ({exc})") from None
    if not isinstance(topics, dict) or not topics:
        raise Phi1Error(f"{where}: expected 'topics:' mapping each topic to a list of subtopics")
    for topic, subs in topics.items():
        if not isinstance(subs, list) or not subs or not all(isinstance(s, str) for s in subs):
            raise Phi1Error(f"{where}: topic {topic!r} needs a non-empty list of subtopics")
    return {str(k): list(v) for k, v in topics.items()}


def make_seeds(cfg: SynthConfig, n: int, run_seed: int, kind: str, start: int = 0) -> list[Seed]:
    """The seeds of sample indices start, ..., n - 1."""
    topics = load_topics(cfg.topics_file)
    pairs = [(t, s) for t, subs in topics.items() for s in subs]
    seeds = []
    for index in range(start, n):
        rng = random.Random(f"{run_seed}:{kind}:{index}")
        topic, subtopic = rng.choice(pairs)
        name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        words = tuple(rng.sample(WORDS, cfg.words_per_prompt))
        seeds.append(
            Seed(
                index,
                topic,
                subtopic,
                rng.choice(cfg.audiences),
                rng.choice(cfg.styles),
                name,
                words,
                rng.choice(CONSTRAINTS),
            )
        )
    return seeds
