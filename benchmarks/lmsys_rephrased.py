"""LMSYS's released rephrased HumanEval samples as the independent check of phi1's decontamination.

"Rethinking Benchmark and Contamination for Language Models with Rephrased Samples" (Yang et al., 2023)
released GPT-4 rephrasings of HumanEval's solutions (renamed, loops rewritten as while loops, `pass`
fillers "to bypass n-gram checks"): `data/rephrase/humaneval_python.jsonl` of lm-sys/llm-decontaminator,
line i rephrasing HumanEval/i (17 of the 164 lines are empty). They stay out of phi1's tests and of any
tuning; this script only measures. Each sample goes through `phi1 decontam` (no judge: no LLM here) twice:
as an exercise (the whole sample), and as corpus code (inside a module among unrelated standard-library
functions, as a file of The Stack would hold it). A sample is *named* when a flag gives its own problem.

Targets: the corpus-code path names at least as many as the exercise path (the sweep of every problem of
each function's arity); the exercise path names more than the 13-gram rule alone (the baseline every
n-gram decontamination tool applies), measured in the same run.

    .venv/bin/python benchmarks/lmsys_rephrased.py --samples humaneval_python.jsonl
    # the file: https://github.com/lm-sys/llm-decontaminator/blob/main/data/rephrase/humaneval_python.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from phi1.clean.decontam import run_decontam  # noqa: E402
from scale import stdlib_pieces  # noqa: E402  (a sibling script: the same standard-library pieces)


def samples(path: Path) -> dict[str, str]:
    """HumanEval task id -> its rephrased sample, the empty lines left out."""
    lines = path.read_text().splitlines()
    out = {f"HumanEval/{i}": json.loads(line)["text"] for i, line in enumerate(lines)}
    return {tid: text for tid, text in out.items() if text.strip()}


def as_module(text: str, rng: random.Random, functions: list[str], imports: list[str]) -> str:
    """The sample among four unrelated functions of the standard library, after a few imports."""
    before, after = rng.sample(functions, 2), rng.sample(functions, 2)
    return "\n\n".join([*rng.sample(imports, 3), *before, text, *after]) + "\n"


def named(data: dict[str, str], kind: str, work: Path, workers: int) -> tuple[dict[str, set[str]], dict]:
    """Each sample whose own problem a flag names -> the detectors that named it; and the run's summary."""
    path = work / f"{kind}.jsonl"
    path.write_text("".join(json.dumps({"id": tid, "text": t}) + "\n" for tid, t in data.items()))
    summary = run_decontam(path, work / kind, kind=kind, workers=workers)
    flags = [json.loads(line) for line in (work / kind / "flags.jsonl").read_text().splitlines()]
    return {f["id"]: set(f["detectors"]) for f in flags if f["task_id"] == f["id"]}, summary


def result(name: str, value: float, baseline: float, target: float) -> str:
    ratio = value / baseline if baseline else float("inf")
    status = "met" if ratio >= target else "missed"
    return f"RESULT {name} value={value:g} baseline={baseline:g} ratio={ratio:.3f} target={target} status={status}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=Path, default=Path("humaneval_python.jsonl"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.samples.exists():
        print(f"not measured: {args.samples} not found (download it from lm-sys/llm-decontaminator, see --help)")
        return
    data = samples(args.samples)
    functions, imports, _ = stdlib_pieces()
    rng = random.Random(0)
    modules = {tid: as_module(text, rng, functions, imports) for tid, text in data.items()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        exercise, _ = named(data, "exercise", work, args.workers)
        code, summary = named(modules, "code", work, args.workers)
        seconds = time.perf_counter() - start
    n = len(data)
    by_ngram = {tid for tid, detectors in exercise.items() if "ngram" in detectors}
    per_detector = {d: sum(d in ds for ds in exercise.values()) for d in ("ngram", "embedding", "ast", "execution")}
    print(f"samples: {n} (LMSYS rephrased HumanEval); {seconds:.0f} s")
    print(
        f"named as exercises: {len(exercise)}, as corpus code: {len(code)}, by the 13-gram rule alone: {len(by_ngram)}"
    )
    print(f"as exercises, named by each detector: {per_detector}")
    print(f"named as exercises only: {sorted(set(exercise) - set(code))}")
    print(f"named as corpus code only: {sorted(set(code) - set(exercise))}")
    print(f"corpus code: {summary['execution']}")
    print(result("lmsys_code_vs_exercise_named", len(code) / n, len(exercise) / n, 1.0))
    print(result("lmsys_exercise_vs_ngram_named", len(exercise) / n, len(by_ngram) / n, 1.0))


if __name__ == "__main__":
    main()
