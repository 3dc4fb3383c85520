"""`phi1 view` at scale: a run directory of generated records (corpus, filtered, exercises, clean, removed; the
stages' own schemas), served by the real server (`phi1 view --no-open`, a subprocess), pages fetched over HTTP.

Measured at 100k and at 1M records (the 100k run is the baseline of flatness):
- the first page of a table, and a filtered page (a facet, a range and an offset), p95 of 20 loads each;
- a text search over the raw corpus's and the clean data's text (the larger tables; median of 3);
- the server's peak RSS (VmHWM) after all of it.
Targets (issue 38): first and filtered page p95 < 300 ms and search < 2 s at 1M; RSS < 500 MiB; RSS at 1M
within 1.5x of RSS at 100k (flat).

    .venv/bin/python benchmarks/view_scale.py [--records 1000000] [--small 100000] [--work /tmp/phi1-view-scale]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import statistics
import sysconfig
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SHARE = {"corpus": 0.35, "filtered": 0.2, "exercises": 0.1, "clean": 0.25, "removed": 0.1}
SHARD = 50_000
TOPICS = ["Recursion", "Strings", "Sorting algorithms", "Hashing", "Geometry", "Dates and times", "Parsing"]
REASONS = ["near_duplicate", "exact_duplicate", "benchmark_ast", "benchmark_ngram", "benchmark_execution"]


def snippets() -> list[str]:
    """Real code to vary: the functions of a few standard-library modules."""
    import ast

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in ("textwrap.py", "heapq.py", "bisect.py", "shlex.py", "fractions.py", "difflib.py", "calendar.py"):
        source = (stdlib / name).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                out.append(ast.get_source_segment(source, node) or "")
    return [s for s in out if 80 < len(s) < 3000]


WORDS = "value items count total index name path text parse split merge order first last inner outer".split()  # noqa: SIM905


def text(rng: random.Random, code: list[str], record_id: str) -> str:
    """Two real functions under a comment of random words, the first renamed: about 2 KB that compresses as
    real code does, not as one snippet repeated."""
    first, second = code[rng.randrange(len(code))], code[rng.randrange(len(code))]
    name = first.split("(")[0].removeprefix("def ").strip()
    renamed = "_".join(rng.choice(WORDS) for _ in range(3)) + f"_{rng.randrange(10**6)}"
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    return f"# {record_id}: {words}\n{first.replace(name, renamed)}\n\n{second}\n"


def build(root: Path, n: int, seed: int = 0) -> None:
    """A run directory of `n` generated records."""
    rng = random.Random(seed)
    code = snippets()
    shutil.rmtree(root, ignore_errors=True)
    for table, share in SHARE.items():
        folder = "clean" if table == "removed" else table
        (root / folder).mkdir(parents=True, exist_ok=True)
        count = int(n * share)
        for start in range(0, count, SHARD):
            rows = min(SHARD, count - start)
            ids = [f"{table[:2]}{start + i:09d}" for i in range(rows)]
            texts = [text(rng, code, i) for i in ids] if table != "removed" else None
            cols: dict[str, list] = {"id": ids}
            if table == "corpus":
                cols |= {"text": texts, "source": ["stdlib"] * rows, "n_bytes": [len(t) for t in texts],
                         "n_lines": [t.count("\n") + 1 for t in texts]}  # fmt: skip
            elif table == "filtered":
                cols |= {"text": texts, "source": ["stdlib"] * rows, "n_bytes": [len(t) for t in texts],
                         "edu_score": [rng.random() * 5 for _ in ids]}  # fmt: skip
            elif table == "exercises":
                cols |= {"text": texts, "prompt": [t[:120] for t in texts], "solution": [t[120:] for t in texts],
                         "tests": [f"assert f({i}) == {i}" for i in range(rows)],
                         "topic": [rng.choice(TOPICS) for _ in ids], "verified": [True] * rows,
                         "mutation_score": [round(rng.random(), 3) for _ in ids],
                         "repairs": [rng.choice((0, 0, 0, 1)) for _ in ids]}  # fmt: skip
            elif table == "clean":
                cols |= {"text": texts, "kind": [rng.choice(("code", "textbook", "exercise")) for _ in ids],
                         "source": [rng.choice(("filtered", "textbook", "exercises")) for _ in ids]}  # fmt: skip
            else:
                cols |= {"source": [rng.choice(("filtered", "exercises")) for _ in ids],
                         "reason": [rng.choice(REASONS) for _ in ids],
                         "of": [f"cl{rng.randrange(n):09d}" for _ in ids]}  # fmt: skip
            name = "removed.parquet" if table == "removed" else f"data-{start // SHARD:05d}.parquet"
            if table == "removed" and start:
                name = f"removed-{start // SHARD}.parquet"  # the viewer reads removed.parquet alone
            pq.write_table(pa.table(cols), root / folder / name, row_group_size=10_000)
        (root / folder / "manifest.json").write_text(json.dumps({"stage": folder, "status": "complete"}))
    # One removed file, as clean writes it.
    parts = sorted((root / "clean").glob("removed*.parquet"))
    if len(parts) > 1:
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        for p in parts:
            p.unlink()
        pq.write_table(table, root / "clean" / "removed.parquet", row_group_size=10_000)


def _get(port: int, path: str) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"GET {path}: HTTP {response.status}")
    return (time.perf_counter() - start) * 1000


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def measure(root: Path) -> dict[str, float]:
    from phi1.view import running

    with running([root], timeout_s=120) as served:
        port = served.port
        out = {"overview_ms": _get(port, "/a/")}
        first = [_get(port, "/a/records/clean") for _ in range(20)]
        filtered = [_get(port, f"/a/records/exercises?f.topic=Hashing&min.mutation_score=0.5&offset={100 * k}")
                    for k in range(20)]  # fmt: skip
        search = [_get(port, f"/a/records/{table}?q=heappush") for table in ("corpus", "clean", "corpus")]
        out |= {"first_page_cold_ms": first[0], "first_page_p95_ms": p95(first), "filtered_p95_ms": p95(filtered),
                "search_ms": statistics.median(search), "rss_mib": _hwm_mib(served.pid)}  # fmt: skip
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/phi1-view-scale"))
    args = parser.parse_args()
    results = {}
    for n in (args.small, args.records):
        start = time.perf_counter()
        build(args.work / f"run-{n}", n)
        built = time.perf_counter() - start
        results[n] = measure(args.work / f"run-{n}")
        size = sum(p.stat().st_size for p in (args.work / f"run-{n}").rglob("*.parquet")) / 2**20
        print(f"{n:,} records ({size:,.0f} MiB of Parquet, built in {built:.0f} s): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in results[n].items()))  # fmt: skip
    big, small = results[args.records], results[args.small]

    def line(name: str, key: str, target: float) -> None:
        value, base = big[key], small[key]
        print(f"RESULT {name} value={value:.1f} baseline={base:.1f} ratio={value / base:.2f} target={target} "
              f"status={'met' if value < target else 'missed'}")  # fmt: skip

    line("view_first_page_p95_ms", "first_page_p95_ms", 300)
    line("view_filtered_page_p95_ms", "filtered_p95_ms", 300)
    line("view_search_ms", "search_ms", 2000)
    line("view_rss_mib", "rss_mib", 500)
    flat = big["rss_mib"] / small["rss_mib"]
    print(
        f"RESULT view_rss_flat value={flat:.2f} baseline=1.0 ratio={flat:.2f} target=1.5 "
        f"status={'met' if flat <= 1.5 else 'missed'} (RSS at {args.records:,} / at {args.small:,} records)"
    )


if __name__ == "__main__":
    main()
