"""Near-deduplication and decontamination speed.

1. MinHash near-dedup of 20,000 documents (word 5-grams, 112 permutations, 14 bands x 8 rows): phi1
   (vectorised signatures over processes, banding with dicts) against a plain datasketch loop over the
   same documents (`MinHash.update` per shingle, `MinHashLSH.query` then `insert`). Target ratio >= 1.0.
2. AST decontamination of 10,000 exercises against HumanEval's 164 solutions: target under 60 s.

Documents are standard-library functions and synthetic exercises, with planted near-duplicates.

    .venv/bin/python benchmarks/dedup_throughput.py [--docs 20000] [--exercises 10000]
"""

from __future__ import annotations

import argparse
import ast
import random
import time
import zlib

from datasketch import MinHash, MinHashLSH

from phi1.clean.decontaminate import ast_matches, function_shapes, load_benchmark_problems
from phi1.clean.dedup import minhash_duplicates
from phi1.config import SynthConfig, TeacherConfig
from phi1.minhash import shingles
from phi1.records import SkipCounter, iter_corpus
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


def plain_datasketch(texts: list[str], n: int, bands: int, rows: int) -> int:
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    duplicates = 0
    for i, text in enumerate(texts):
        m = MinHash(num_perm=bands * rows, hashfunc=lambda b: zlib.crc32(b))
        for s in shingles(text, n):
            m.update(s.encode())
        if lsh.query(m):
            duplicates += 1
        else:
            lsh.insert(str(i), m)
    return duplicates


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

    start = time.perf_counter()
    plain_dups = plain_datasketch(docs, 5, 14, 8)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    dup, _ = minhash_duplicates(docs, 5, 14, 8)
    ours = time.perf_counter() - start

    print(f"documents: {len(docs)} (of them {len(planted)} planted near-copies)")
    print(f"plain datasketch loop: {baseline:.1f}s  {len(docs) / baseline:.0f} docs/s  {plain_dups} duplicates")
    print(f"phi1:                  {ours:.1f}s  {len(docs) / ours:.0f} docs/s  {int(dup.sum())} duplicates")
    ratio = (len(docs) / ours) / (len(docs) / baseline)
    status = "met" if ratio >= 1.0 else "missed"
    print(
        f"RESULT dedup_docs_per_s value={len(docs) / ours:.0f} baseline={len(docs) / baseline:.0f} "
        f"ratio={ratio:.3f} target=1.0 status={status}"
    )

    texts = exercises(args.exercises)
    bench = load_benchmark_problems(humaneval=True, mbpp=False)
    start = time.perf_counter()
    train_shapes = [s for t in texts for s in function_shapes(t, 12)]
    bench_shapes = [s for p in bench for s in function_shapes(p.solution, 12)]
    matches = ast_matches(train_shapes, bench_shapes, 0.8)
    elapsed = time.perf_counter() - start
    print(f"AST decontamination: {len(texts)} exercises ({len(train_shapes)} functions) x {len(bench)} HumanEval")
    print(f"  solutions ({len(bench_shapes)} functions): {elapsed:.1f}s, {len(matches)} pairs with tau >= 0.8")
    status = "met" if elapsed < 60 else "missed"
    print(
        f"RESULT ast_decontamination_s value={elapsed:.1f} baseline=60 ratio={elapsed / 60:.3f} target=60 "
        f"status={status}"
    )


if __name__ == "__main__":
    main()
