"""phi1 beside the tool users would pick instead, on the same data and machine, in one run.

Dedup vs datatrove: `benchmarks/scale.py`'s generated corpus (standard-library functions renamed per file;
4% exact copies with whitespace changed, 4% near copies with one line in thirty edited), N files, through
datatrove's MinHash pipeline (signatures -> buckets -> clusters -> filter, local executor, its example's
settings with phi1's word 5-grams and 14 bands x 8 rows) and through phi1's clean deduplication, the same
number of workers, each in a fresh process whose whole tree's peak memory is polled. Targets: phi1's wall
time <= 1.0x datatrove's; recall and precision of the planted duplicates at least datatrove's.

Evaluation vs EvalPlus: HumanEval+'s 164 canonical solutions, two mutants of each (`phi1.mutation`: a
wrong constant, comparison, operator...) and a broken completion (`return None`), through EvalPlus's
`evaluate` (HUMANEVAL_OVERRIDE_PATH: the HumanEval+ v0.1.10 phi1 ships, no isolation) and `phi1 eval
--benchmark humaneval+` (bubblewrap on), the same parallelism, both computing the reference outputs.
Targets: phi1's wall time <= 1.0x EvalPlus's; every verdict disagreement explained (docs/benchmarks.md).

The peers are installed into a virtual environment of their own (`--venv`, from the package registry),
never into phi1's; a peer that cannot be installed is printed as not measured, never as beaten.

    .venv/bin/python benchmarks/peers.py [--files 50000] [--workers 2] [--venv /tmp/phi1-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scale import _tree_rss, generate  # noqa: E402  (a sibling script: the same corpus, the same RSS poll)

PEERS = ("datatrove[processing]>=0.4", "orjson", "spacy", "evalplus")  # orjson, spacy: datatrove's reader, tokenizer


def peer_python(venv: Path) -> tuple[Path | None, str]:
    """The peers' interpreter, installed on first use; (None, why) where it cannot be."""
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"venv: {made.stderr.strip()[-300:]}"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"pip install {' '.join(PEERS)}: {done.stderr.strip().splitlines()[-1][-300:]}"
    return python, ""


def write_inputs(corpus: Path, out: Path, shards: int) -> list[str]:
    """The corpus as JSONL files (datatrove) and Parquet shards (phi1) of (id, text), the same order."""
    files = sorted(p for p in corpus.rglob("*.py"))
    ids = [str(p.relative_to(corpus)) for p in files]
    per = -(-len(files) // shards)
    for k in range(shards):
        part = list(zip(ids[k * per : (k + 1) * per], files[k * per : (k + 1) * per], strict=True))
        rows = [{"id": i, "text": p.read_text()} for i, p in part]
        (out / "jsonl").mkdir(parents=True, exist_ok=True)
        (out / "parquet").mkdir(parents=True, exist_ok=True)
        with (out / "jsonl" / f"part-{k:03d}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        pq.write_table(pa.Table.from_pylist(rows), out / "parquet" / f"data-{k:05d}.parquet")
    return ids


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, list[str]]:
    """(wall seconds, peak RSS of the process tree, the removed ids it printed)."""
    # Output to files, not pipes: a pipe the poll loop does not drain would block the child once full.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid)[0])
            time.sleep(0.05)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[1]} failed:\n{err.read()[-3000:]}")
        return wall, peak, json.loads(out.read().strip().splitlines()[-1])


def scores(removed: list[str], planted: dict[str, str]) -> tuple[float, float]:
    """(recall, precision) as `benchmarks/scale.py` counts them: a pair is found when one of its files was
    removed; a removal is right when the file belongs to a planted pair."""
    gone = set(removed)
    in_pairs = set(planted) | set(planted.values())
    recall = sum(d in gone or o in gone for d, o in planted.items()) / max(1, len(planted))
    precision = len(gone & in_pairs) / max(1, len(gone))
    return recall, precision


def result(name: str, value: float, baseline: float, target: float, higher_is_better: bool = False) -> str:
    ratio = value / baseline if baseline else float("inf")
    met = ratio >= target if higher_is_better else ratio <= target
    return (f"RESULT {name} value={value:.4g} baseline={baseline:.4g} ratio={ratio:.3f} target={target} "
            f"status={'met' if met else 'missed'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/phi1-peers"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/phi1-peers-work"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    python, why = peer_python(args.venv)
    planted = generate(args.workdir / "corpus", args.files)
    write_inputs(args.workdir / "corpus", args.workdir, shards=max(args.workers * 4, 8))
    workers = str(args.workers)
    ours = timed([sys.executable, str(HERE / "helpers" / "phi1_dedup.py"), "--shards", str(args.workdir / "parquet"),
                  "--work", str(args.workdir / "phi1"), "--workers", workers])  # fmt: skip
    r_ours, p_ours = scores(ours[2], planted)
    print(f"files: {args.files}  planted duplicates: {len(planted)}  workers: {args.workers}")
    print(f"phi1:      {ours[0]:.1f} s, peak RSS {ours[1] / 2**20:,.0f} MiB, removed {len(ours[2])}, "
          f"recall {r_ours:.4f}, precision {p_ours:.4f}")  # fmt: skip
    if python is None:
        print(f"datatrove: not measured: {why}")
        return
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    theirs = timed([str(python), str(HERE / "helpers" / "datatrove_dedup.py"), "--input",
                    str(args.workdir / "jsonl"), "--work", str(args.workdir / "datatrove"), "--workers", workers],
                   env=env)  # fmt: skip
    r_theirs, p_theirs = scores(theirs[2], planted)
    print(f"datatrove: {theirs[0]:.1f} s, peak RSS {theirs[1] / 2**20:,.0f} MiB, removed {len(theirs[2])}, "
          f"recall {r_theirs:.4f}, precision {p_theirs:.4f}")  # fmt: skip
    print(result("dedup_wall_s_vs_datatrove", ours[0], theirs[0], 1.0))
    print(result("dedup_recall_vs_datatrove", r_ours, r_theirs, 1.0, higher_is_better=True))
    print(result("dedup_precision_vs_datatrove", p_ours, p_theirs, 1.0, higher_is_better=True))
    print(result("dedup_peak_rss_vs_datatrove", ours[1] / 2**20, theirs[1] / 2**20, 1.0))
    compare_evalplus(python, args.workdir / "eval", args.workers, env)


def eval_samples(path: Path) -> list[dict]:
    """Each HumanEval+ problem's canonical completion, two of its mutants and `return None`."""
    from phi1.evaluate import benchmarks
    from phi1.mutation.mutants import mutants

    rows = []
    for tid, p in benchmarks.load("humaneval+").problems.items():
        code = p.prompt + p.reference
        wrong = [m.source[len(p.prompt) :] for m in mutants(code, p.prompt.count("\n") + 1, limit=2, seed=1)]
        rows += [{"task_id": tid, "completion": c} for c in (p.reference, *wrong, "    return None\n")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def compare_evalplus(python: Path, work: Path, workers: int, env: dict[str, str]) -> None:
    import gzip

    from phi1.data import benchmark_file

    samples = work / "samples.jsonl"
    rows = eval_samples(samples)
    plus = work / "HumanEvalPlus.jsonl"
    plus.write_bytes(gzip.decompress(benchmark_file("humaneval+").read_bytes()))
    start = time.perf_counter()
    cmd = [str(python), "-m", "evalplus.evaluate", "--dataset", "humaneval", "--samples", str(samples),
           "--parallel", str(workers), "--i-just-wanna-run"]  # fmt: skip
    theirs = subprocess.run(cmd, env={**env, "HUMANEVAL_OVERRIDE_PATH": str(plus)}, capture_output=True, text=True)
    their_s = time.perf_counter() - start
    if theirs.returncode != 0:
        print(f"evalplus: not measured: {theirs.stderr.strip()[-300:]}")
        return
    start = time.perf_counter()
    ours = subprocess.run([sys.executable, "-m", "phi1.cli", "eval", "--benchmark", "humaneval+", "--samples",
                           str(samples), "--out", str(work / "phi1"), "--k", "1", "--workers", str(workers)],
                          capture_output=True, text=True)  # fmt: skip
    our_s = time.perf_counter() - start
    if ours.returncode != 0:
        raise SystemExit(f"phi1 eval failed:\n{ours.stderr[-3000:]}")
    verdicts = json.loads((work / "samples_eval_results.json").read_text())["eval"]
    disagree = []
    for r in map(json.loads, (work / "phi1" / "results.jsonl").read_text().splitlines()):
        e = verdicts[r["task_id"]][r["completion_id"]]
        if (e["base_status"] == "pass", e["plus_status"] == "pass") != (r["passed_base"], r["passed"]):
            disagree.append((r["task_id"], r["completion_id"], r["passed_base"], r["passed"]))
    print(f"evaluation: {len(rows)} samples; EvalPlus {their_s:.1f} s, phi1 {our_s:.1f} s (bubblewrap on)")
    for tid, cid, base, plus_ok in disagree:
        print(f"  disagreement: {tid} sample {cid}: phi1 base {base} plus {plus_ok}, EvalPlus the opposite")
    print(result("eval_wall_s_vs_evalplus", our_s, their_s, 1.0))
    agree = 1 - len(disagree) / len(rows)
    print(f"RESULT eval_verdict_agreement value={agree:.4f} baseline=1.0 ratio={agree:.4f} target=1.0 "
          f"status={'met' if not disagree else 'missed'}")  # fmt: skip
    # Explained without reading code: EvalPlus fails the problem's canonical solution (sample 0), so its
    # oracle for that problem is broken (docs/benchmarks.md says how); any other disagreement is not.
    broken = {
        tid for tid, runs in verdicts.items() if runs[0]["base_status"] != "pass" or runs[0]["plus_status"] != "pass"
    }
    unexplained = [d for d in disagree if d[0] not in broken]
    print(f"  problems whose canonical solution EvalPlus fails: {sorted(broken)}")
    ratio = len(unexplained) / len(disagree) if disagree else 0.0
    print(f"RESULT eval_disagreements_unexplained value={len(unexplained)} baseline={len(disagree)} "
          f"ratio={ratio:.3f} target=0 status={'met' if not unexplained else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
