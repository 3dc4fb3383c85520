"""Near-deduplication and decontamination speed.

1. MinHash near-dedup of 20,000 documents (word 5-grams, 112 permutations, 14 bands x 8 rows): phi1
   (vectorised signatures over processes, banding with dicts) against datasketch used as its documentation
   advises for speed: `MinHash.bulk` (batched `update_batch`) with a fast hash (CRC32, as phi1) over the same
   number of worker processes, then `MinHashLSH.query` / `insert` of `LeanMinHash`es. Target ratio >= 1.0;
   phi1 keeps its own MinHash only while it is clearly faster (ratio >= 1.2).
2. AST decontamination: phi1 (length and node-count upper bounds rule out most pairs, then difflib's
   ratio in worker processes) against the plain way, difflib's ratio of every pair, over the same
   exercises' first 400 functions (measured); then phi1 on all 10,000 exercises against HumanEval's 164
   solutions, target under 60 s.

Documents are standard-library functions and synthetic exercises, with planted near-duplicates.

    .venv/bin/python benchmarks/dedup_throughput.py [--docs 20000] [--exercises 10000]
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from difflib import SequenceMatcher

from datasketch import LeanMinHash, MinHash, MinHashLSH

from phi1.clean.dedup import minhash_duplicates
from phi1.clean.detectors.ast_match import ast_matches, function_shapes
from phi1.clean.problems import load_benchmark_problems
from phi1.config import SynthConfig, TeacherConfig
from phi1.curate.readers import SkipCounter, iter_corpus
from phi1.minhash import shingles
from phi1.synth.exercises import exercise_request
from phi1.synth.seeds import make_seeds
from phi1.teacher import make_teacher


def stdlib_functions(limit: int) -> list[str]:
    out: list[str] = []
    for doc in iter_corpus("stdlib", None, SkipCounter()):
        try:
            tree = ast.parse(doc.text)
        except SyntaxError:
            continue
        lines = doc.text.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.end_lineno and node.end_lineno - node.lineno >= 4:
                out.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
                if len(out) >= limit:
                    return out
    return out


def exercises(n: int) -> list[str]:
    teacher = make_teacher(TeacherConfig())
    requests = [exercise_request(s, 0.8, 1500) for s in make_seeds(SynthConfig(), n, 0, "exercise")]
    return [r.text.split("```python\n")[1].split("```")[0] for r in teacher.generate(requests)]


def _bulk_signatures(args: tuple[list[str], int, int]) -> list[LeanMinHash]:
    texts, n, num_perm = args
    sets = [[s.encode() for s in shingles(t, n)] for t in texts]
    return [LeanMinHash(m) for m in MinHash.bulk(sets, num_perm=num_perm, hashfunc=zlib.crc32)]


def datasketch_dedup(texts: list[str], n: int, bands: int, rows: int, workers: int) -> int:
    num_perm = bands * rows
    size = (len(texts) + workers * 4 - 1) // (workers * 4)
    chunks = [(texts[i : i + size], n, num_perm) for i in range(0, len(texts), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        values = [v for chunk in pool.map(_bulk_signatures, chunks) for v in chunk]
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    duplicates = 0
    for i, m in enumerate(values):
        if lsh.query(m):
            duplicates += 1
        else:
            lsh.insert(str(i), m)
    return duplicates


def _ratios(args: tuple[list[str], list[str]]) -> list[float]:
    train, bench = args
    out = []
    matcher = SequenceMatcher(None, autojunk=False)
    for b in bench:  # seq2 is the one difflib indexes: once per benchmark function, as phi1 compares
        matcher.set_seq2(b)
        for t in train:
            matcher.set_seq1(t)
            out.append(matcher.ratio())
    return out


def plain_ast(train: list[str], bench: list[str], floor: float, workers: int) -> int:
    """difflib's ratio of every pair, in `workers` processes."""
    size = (len(train) + workers * 4 - 1) // (workers * 4)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        ratios = [r for block in pool.map(_ratios, [(train[i : i + size], bench) for i in range(0, len(train), size)])
                  for r in block]  # fmt: skip
    return sum(r >= floor for r in ratios)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--exercises", type=int, default=10_000)
    args = parser.parse_args()

    rng = random.Random(0)
    base = stdlib_functions(int(args.docs * 0.9))
    planted = []
    for text in rng.sample(base, args.docs - len(base)):
        lines = text.splitlines()
        lines.insert(rng.randrange(len(lines)), "    # a comment added to a copy")
        planted.append("\n".join(lines))
    docs = base + planted
    rng.shuffle(docs)

    workers = os.cpu_count() or 1
    datasketch_dedup(docs[:500], 5, 14, 8, workers)  # warm both: process pools, imports
    minhash_duplicates(docs[:500], 5, 14, 8, workers)
    start = time.perf_counter()
    plain_dups = datasketch_dedup(docs, 5, 14, 8, workers)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    dup, _ = minhash_duplicates(docs, 5, 14, 8, workers)
    ours = time.perf_counter() - start

    print(f"documents: {len(docs)} (of them {len(planted)} planted near-copies), {workers} workers")
    print(f"datasketch (bulk, CRC32): {baseline:.1f}s  {len(docs) / baseline:.0f} docs/s  {plain_dups} duplicates")
    print(f"phi1:                     {ours:.1f}s  {len(docs) / ours:.0f} docs/s  {int(dup.sum())} duplicates")
    ratio = (len(docs) / ours) / (len(docs) / baseline)
    status = "met" if ratio >= 1.0 else "missed"
    print(
        f"RESULT dedup_docs_per_s value={len(docs) / ours:.0f} baseline={len(docs) / baseline:.0f} "
        f"ratio={ratio:.3f} target=1.0 status={status}"
    )

    texts = exercises(args.exercises)
    bench = load_benchmark_problems(humaneval=True, mbpp=False)
    train_sample = [s for t in texts for s in function_shapes(t, 12)][:400]
    bench_all = [s for p in bench for s in function_shapes(p.solution, 12)]
    start = time.perf_counter()
    plain_n = plain_ast(train_sample, bench_all, 0.8, workers)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    ours_n = len(ast_matches(train_sample, bench_all, 0.8, workers))
    ours_s = time.perf_counter() - start
    pairs = len(train_sample) * len(bench_all)
    print(f"AST, {len(train_sample)} functions x {len(bench_all)}: every pair {plain_s:.2f}s ({plain_n} matches), "
          f"phi1 {ours_s:.2f}s ({ours_n} matches)")  # fmt: skip
    ratio = (pairs / ours_s) / (pairs / plain_s)
    print(
        f"RESULT ast_pairs_per_s value={pairs / ours_s:.0f} baseline={pairs / plain_s:.0f} ratio={ratio:.3f} "
        f"target=1.0 status={'met' if ratio >= 1.0 and ours_n == plain_n else 'missed'}"
    )

    start = time.perf_counter()
    train_shapes = [s for t in texts for s in function_shapes(t, 12)]
    bench_shapes = [s for p in bench for s in function_shapes(p.solution, 12)]
    matches = ast_matches(train_shapes, bench_shapes, 0.8)
    elapsed = time.perf_counter() - start
    print(f"AST decontamination: {len(texts)} exercises ({len(train_shapes)} functions) x {len(bench)} HumanEval")
    print(f"  solutions ({len(bench_shapes)} functions): {elapsed:.1f}s, {len(matches)} pairs with tau >= 0.8")
    status = "met" if elapsed < 60 else "missed"
    # The every-pair way, at its measured rate, would take this long on the same pairs:
    every_pair_s = len(train_shapes) * len(bench_shapes) / (pairs / plain_s)
    print(
        f"RESULT ast_decontamination_s value={elapsed:.1f} baseline={every_pair_s:.1f} "
        f"ratio={elapsed / every_pair_s:.4f} target=60 status={status}"
    )


if __name__ == "__main__":
    main()
