"""The data stages at scale: memory and time at N and 4N files, and planted duplicates found.

A corpus of realistic Python files is generated from the standard library: each file is a module docstring,
imports and 2-6 top-level functions drawn at random, with identifiers renamed per file (so that no two files
share their text by chance). Then 4% of the files are exact copies of an earlier file (whitespace changed)
and 4% near copies (one line in thirty edited). Both sizes run through corpus -> annotate (offline teacher,
300 files) -> embed (`hashing` encoder) -> classifier -> select (top 80%) -> clean -> tokenize, each in a
fresh process whose peak memory (the whole process tree, polled) is measured.

Targets: peak RSS at 4N / peak RSS at N <= 1.25; time at 4N / (4 x time at N) <= 1.15; of the planted
duplicate pairs that reach clean (both files kept by selection), recall >= 0.95 and precision >= 0.95 of
the removals as duplicates. The MiniLM embedding path (GPU-bound at scale, ~45 files/s on 2 CPU cores) is
checked for memory apart, on the first n and 4n files of the N corpus in corpus shards of MINILM_SHARD files
(both sizes span several shards, as a real corpus does): peak RSS at 4n / at n <= 1.25. So are
the synthetic stages (offline teacher, every exercise run in the sandbox, shards of 500 seeds): s textbook
sections and s/4 exercises against 4s and s: peak RSS of the phi1 process at 4s / at s <= 1.25 (the programs
under test in the sandbox are apart: each is capped by the sandbox's memory limit, and the heaviest of 4s
exercises is heavier than the heaviest of s, which says nothing of phi1).

    .venv/bin/python benchmarks/scale.py [--files 50000] [--workdir /tmp/phi1-scale] [--minilm-files 500]
                                         [--synth-samples 2000]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

STAGES = ("corpus", "annotate", "embed", "classifier", "select", "clean", "tokenize")
_NAME = re.compile(r"\b([a-z_][a-z0-9_]{3,})\b")


def stdlib_pieces() -> tuple[list[str], list[str], list[str]]:
    """Top-level functions, import lines and docstrings of the standard library."""
    functions, imports, docs = [], set(), []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = text.splitlines()
        doc = ast.get_docstring(tree)
        if doc and len(doc) < 1500:
            docs.append(doc)
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                imports.add(ast.unparse(node))
            if isinstance(node, ast.FunctionDef) and node.end_lineno and 5 <= node.end_lineno - node.lineno <= 80:
                functions.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    return functions, sorted(imports), docs


def _rename(text: str, rng: random.Random) -> str:
    """Rename a few identifiers of the text consistently (a new file, same shape)."""
    names = sorted(set(_NAME.findall(text)) - {"self", "return", "import", "from", "None", "True", "False"})
    chosen = rng.sample(names, min(len(names), 4))
    for name in chosen:
        text = re.sub(rf"\b{name}\b", f"{name}_{rng.randrange(10**6):x}", text)
    return text


def generate(folder: Path, n: int, seed: int = 0) -> dict[str, str]:
    """n files under folder; returns {duplicate file: the file it copies} for the planted duplicates."""
    functions, imports, docs = stdlib_pieces()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    planted: dict[str, str] = {}
    made: list[str] = []
    for i in range(n):
        name = f"m{i // 1000:04d}/f{i:07d}.py"
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        r = rng.random()
        if made and r < 0.04:
            original = rng.choice(made)
            text = (folder / original).read_text().replace("\n\n", "\n\n\n", 1) + "\n"
            planted[name] = original
        elif made and r < 0.08:
            original = rng.choice(made)
            lines = (folder / original).read_text().splitlines()
            for k in rng.sample(range(len(lines)), max(1, len(lines) // 30)):
                lines[k] += "  # revised"
            text = "\n".join(lines) + "\n"
            planted[name] = original
        else:
            parts = [f'"""{rng.choice(docs)}"""', *rng.sample(imports, 3)]
            parts += [_rename(f, rng) for f in rng.sample(functions, rng.randint(2, 6))]
            text = "\n\n".join(parts) + "\n"
            made.append(name)
        path.write_text(text)
    return planted


def settings(corpus: Path) -> list[str]:
    return [
        f"corpus.path={corpus}",
        "corpus.kind=folder",
        "curate.encoder=hashing",
        "curate.annotate_samples=300",
        "curate.keep=top_fraction",
        "curate.keep_fraction=0.8",
        "tokenize.train_sample_bytes=5000000",
    ]


def run_stages(run_dir: Path, corpus: Path) -> dict[str, float]:
    """Every data stage on the corpus, in this process; seconds per stage."""
    from phi1.clean import run_clean
    from phi1.config import load_config
    from phi1.curate.annotate import annotate
    from phi1.curate.classifier import train
    from phi1.curate.corpus import build_corpus
    from phi1.curate.embed import embed_corpus
    from phi1.curate.select import select
    from phi1.rundir import open_step
    from phi1.teacher import make_teacher
    from phi1.tokenize import tokenize

    config = load_config(None, settings(corpus))
    cfg = config.curate
    teacher = make_teacher(config.teacher, run_dir / "teacher-cache.sqlite")
    times: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        times[name] = time.perf_counter() - start
        return out

    corpus_m = timed("corpus", build_corpus, run_dir, config)
    timed("annotate", annotate, run_dir, cfg, teacher, open_step(run_dir, "annotations", config), config.seed)
    timed("embed", embed_corpus, run_dir, cfg, open_step(run_dir, "embeddings", config))
    timed("classifier", train, run_dir, cfg, open_step(run_dir, "classifier", config), config.seed)
    timed("select", select, run_dir, cfg, open_step(run_dir, "filtered", config), corpus_m)
    timed("clean", run_clean, run_dir, config)
    timed("tokenize", tokenize, run_dir, config)
    return times


MINILM_SHARD = 250


def run_minilm(run_dir: Path, corpus: Path, n: int) -> dict[str, float]:
    """The corpus's first n files through the MiniLM embedding path (what a GPU does at scale); seconds."""
    from phi1.config import load_config
    from phi1.curate.corpus import build_corpus
    from phi1.curate.embed import embed_corpus
    from phi1.rundir import open_step

    overrides = [s for s in settings(corpus) if not s.startswith("curate.encoder")]
    config = load_config(
        None, [*overrides, f"corpus.max_files={n}", f"corpus.shard_size={MINILM_SHARD}", "curate.encoder=minilm"]
    )
    build_corpus(run_dir, config)
    start = time.perf_counter()
    embed_corpus(run_dir, config.curate, open_step(run_dir, "embeddings", config))
    return {"embed": time.perf_counter() - start}


def run_synth(run_dir: Path, n: int) -> dict[str, float]:
    """n textbook sections and n/4 exercises (verified in the sandbox) with the offline teacher; seconds."""
    from phi1.config import load_config
    from phi1.synth.exercises import synth_exercises
    from phi1.synth.textbook import synth_textbook
    from phi1.teacher import make_teacher

    config = load_config(
        None, [f"synth.textbook_samples={n}", f"synth.exercise_samples={n // 4}", "synth.shard_size=500"]
    )
    teacher = make_teacher(config.teacher, None)  # no cache: the answers are made, not looked up
    start = time.perf_counter()
    synth_textbook(run_dir, config, teacher)
    middle = time.perf_counter()
    synth_exercises(run_dir, config, teacher)
    return {"textbook": middle - start, "exercises": time.perf_counter() - middle}


def _tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of a process and all its descendants, and of the process alone (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total, rss.get(pid, 0)


def measure(run_dir: Path, corpus: Path, minilm_files: int = 0, synth: int = 0) -> dict[str, float]:
    """run_stages (or run_minilm on that many files, or run_synth on that many samples) in a fresh process;
    its seconds per stage and the peak RSS of its process tree, and of the process alone."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "times.json"
    cmd = [sys.executable, __file__, "--stages", str(run_dir), str(corpus), str(out), str(minilm_files), str(synth)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = own = 0
    while proc.poll() is None:
        tree, alone = _tree_rss(proc.pid)
        peak, own = max(peak, tree), max(own, alone)
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"the stages failed on {corpus} (exit {proc.returncode})")
    return {**json.loads(out.read_text()), "peak_rss": peak, "peak_own_rss": own}


def duplicates_found(run_dir: Path, corpus: Path, planted: dict[str, str]) -> tuple[float, float, int]:
    """(recall, precision, pairs that reached clean) of the planted duplicates."""
    import pyarrow.parquet as pq

    def by_source(folder: str) -> dict[str, str]:
        out = {}
        for path in sorted((run_dir / folder).glob("data-*.parquet")):
            t = pq.read_table(path, columns=["id", "source"])
            sources = [str(Path(s).relative_to(corpus)) for s in t.column("source").to_pylist()]
            out.update(zip(sources, t.column("id").to_pylist(), strict=True))
        return out

    reached = by_source("filtered")  # source (file name) -> id, for the files selection kept
    removed = pq.read_table(run_dir / "clean" / "removed.parquet").to_pylist()
    as_dup = {r["id"] for r in removed if r["reason"] in ("exact_duplicate", "near_duplicate")}
    both = [(d, o) for d, o in planted.items() if d in reached and o in reached]
    # A pair counts as found when one of its two files was removed as a duplicate (the earlier-kept rule
    # may keep the copy and drop the original when the copy comes first in corpus order).
    found = sum(1 for d, o in both if reached[d] in as_dup or reached[o] in as_dup)
    in_pairs = {reached[f] for pair in both for f in pair}
    true_removals = len(as_dup & in_pairs)
    recall = found / max(1, len(both))
    precision = true_removals / max(1, len(as_dup))
    return recall, precision, len(both)


def result(name: str, value: float, baseline: float, target: float, higher_is_better: bool = False) -> str:
    ratio = value / baseline if baseline else float("inf")
    met = ratio >= target if higher_is_better else ratio <= target
    return f"RESULT {name} value={value:.4g} baseline={baseline:.4g} ratio={ratio:.3f} target={target} " \
        f"status={'met' if met else 'missed'}"  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--stages":
        run_dir, corpus, out = (Path(a) for a in sys.argv[2:5])
        minilm_files, synth = int(sys.argv[5]), int(sys.argv[6])
        if synth:
            times = run_synth(run_dir, synth)
        elif minilm_files:
            times = run_minilm(run_dir, corpus, minilm_files)
        else:
            times = run_stages(run_dir, corpus)
        Path(out).write_text(json.dumps(times))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/phi1-scale"))
    parser.add_argument("--minilm-files", type=int, default=500, help="n for the MiniLM memory check (n and 4n)")
    parser.add_argument("--synth-samples", type=int, default=2000, help="s for the synth memory check (s and 4s)")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = {}
    planted_at = {}
    for label, n in (("N", args.files), ("4N", 4 * args.files)):
        corpus = args.workdir / f"corpus-{n}"
        planted_file = corpus.with_suffix(".planted.json")
        if not planted_file.exists():
            shutil.rmtree(corpus, ignore_errors=True)
            start = time.perf_counter()
            planted_file.write_text(json.dumps(generate(corpus, n)))
            print(f"generated {n} files in {time.perf_counter() - start:.0f} s", flush=True)
        planted_at[label] = json.loads(planted_file.read_text())
        rows[label] = measure(args.workdir / f"run-{n}", corpus)
        size = sum(p.stat().st_size for p in corpus.rglob("*.py"))
        rows[label]["files"], rows[label]["mb"] = n, size / 1e6
        total = sum(rows[label][s] for s in STAGES)
        rss = rows[label]["peak_rss"] / 2**20
        print(f"{label}: {n} files, {size / 1e6:.0f} MB, {total:.0f} s, peak RSS {rss:.0f} MiB", flush=True)
        for s in STAGES:
            t = rows[label][s]
            print(f"  {s:<10} {t:8.1f} s  {n / t:9.0f} files/s  {size / 1e6 / t:7.2f} MB/s", flush=True)
    recall, precision, pairs = duplicates_found(
        args.workdir / f"run-{4 * args.files}", args.workdir / f"corpus-{4 * args.files}", planted_at["4N"]
    )
    print(f"planted duplicate pairs reaching clean at 4N: {pairs}", flush=True)
    minilm = {}
    if args.minilm_files:
        for k in (args.minilm_files, 4 * args.minilm_files):
            row = minilm[k] = measure(args.workdir / f"minilm-{k}", args.workdir / f"corpus-{args.files}", k)
            print(f"MiniLM embedding of {k} files: {row['embed']:.1f} s, {k / row['embed']:.0f} files/s, "
                  f"peak RSS {row['peak_rss'] / 2**20:.0f} MiB", flush=True)  # fmt: skip
    synth = {}
    if args.synth_samples:
        for k in (args.synth_samples, 4 * args.synth_samples):
            row = synth[k] = measure(args.workdir / f"synth-{k}", Path(), synth=k)
            print(f"synth of {k} textbook sections: {row['textbook']:.1f} s, {k // 4} exercises: "
                  f"{row['exercises']:.1f} s, peak RSS {row['peak_own_rss'] / 2**20:.0f} MiB "
                  f"({row['peak_rss'] / 2**20:.0f} MiB with the sandboxed programs)", flush=True)  # fmt: skip
    print(f"the benchmark took {(time.perf_counter() - began) / 60:.1f} min", flush=True)
    t_n = sum(rows["N"][s] for s in STAGES)
    t_4n = sum(rows["4N"][s] for s in STAGES)
    print(result("peak_rss_4n_over_n", rows["4N"]["peak_rss"] / 2**20, rows["N"]["peak_rss"] / 2**20, 1.25))
    print(result("time_4n_over_4x_n", t_4n, 4 * t_n, 1.15))
    print(result("duplicate_recall", recall, 1.0, 0.95, higher_is_better=True))
    print(result("duplicate_precision", precision, 1.0, 0.95, higher_is_better=True))
    if minilm:
        small, large = (minilm[k]["peak_rss"] / 2**20 for k in sorted(minilm))
        print(result("minilm_peak_rss_4n_over_n", large, small, 1.25))
    if synth:
        small, large = (synth[k]["peak_own_rss"] / 2**20 for k in sorted(synth))
        print(result("synth_peak_rss_4n_over_n", large, small, 1.25))


if __name__ == "__main__":
    main()
