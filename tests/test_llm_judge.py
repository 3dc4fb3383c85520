"""The `llm` contamination detector: the teacher judges each sample's nearest benchmark problems (a loopback
OpenAI-compatible judge server that knows which sample rephrases which problem, and answers some pairs
without the verdict line), on phi1's own rephrased HumanEval twins as exercises and as corpus code."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, phi1_cmd
from fake_server import FakeOpenAI
from phi1.clean.decontam import run_decontam
from phi1.clean.detectors.llm_judge import Judge, parse_verdict
from phi1.config import TeacherConfig
from phi1.data import benchmark_file
from phi1.records import read_jsonl
from phi1.teacher import make_teacher
from rephrased_twins import AS_CODE, TWINS
from test_decontam import ORDINARY

HE = {r["task_id"]: r for _, r in read_jsonl(benchmark_file("humaneval"))}
# A twin's function name -> the entry point of the problem it rephrases.
TRUTH = {next(n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)): HE[tid]["entry_point"]
         for tid, (_, code) in TWINS.items()}  # fmt: skip


def oracle(body: dict) -> str:
    """Same when the sample holds a twin and the problem shown is the one it rephrases."""
    prompt = body["messages"][-1]["content"]
    sample, problem = prompt.split("The benchmark problem:")
    if "celsius_table" in sample:
        return "I am not sure what to say."  # never a verdict line: recorded as invalid
    if "distinct_sorted" in sample and not oracle.asked.get(prompt):  # type: ignore[attr-defined]
        oracle.asked[prompt] = True  # type: ignore[attr-defined]
        return "Probably the same problem, reversed."  # no verdict line the first time: asked again
    same = any(name in sample and f"def {entry}(" in problem for name, entry in TRUTH.items())
    return f"Reason: compared the two.\nVerdict: {'same' if same else 'different'}"


def judged(tmp_path: Path, name: str, rows: list[dict], kind: str, server: FakeOpenAI, k: int = 2) -> tuple:
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TeacherConfig(backend="openai", model="judge", base_url=server.url, concurrency=4)
    judge = Judge(make_teacher(cfg, tmp_path / "judge.sqlite"), k)
    summary = run_decontam(data, tmp_path / name, kind=kind, workers=2, judge=judge)
    flags = [json.loads(line) for line in (tmp_path / name / "flags.jsonl").read_text().splitlines()]
    return summary, flags


@pytest.mark.slow
def test_the_judge_names_rephrased_twins_as_exercises_and_as_corpus_code(tmp_path: Path) -> None:
    oracle.asked = {}  # type: ignore[attr-defined]
    exercises = [{"id": tid, "text": code} for tid, (_, code) in TWINS.items()]
    exercises += [{"id": f"ordinary-{i}", "text": code} for i, code in enumerate(ORDINARY)]
    with FakeOpenAI(respond=oracle) as server:
        server.faults.append("500")  # retried like every teacher call
        summary, flags = judged(tmp_path, "exercises", exercises, "exercise", server)
        named = {f["id"] for f in flags if f["task_id"] == f["id"]}
        assert named == set(TWINS)  # every twin, by some detector, with the right problem
        by_llm = {f["id"] for f in flags if "llm" in f["detectors"]}
        # The twins whose task detail changed fail the problem's tests: only the judge names them.
        assert {"HumanEval/16", "HumanEval/34"} <= by_llm
        assert all(f["task_id"] == f["id"] for f in flags if "llm" in f["detectors"])
        assert not any(f["id"].startswith("ordinary") and "llm" in f["detectors"] for f in flags)
        j = summary["llm_judge"]
        assert j["samples"] == len(exercises) and j["candidates"] >= 2 * len(exercises)
        assert j["invalid"] == 2 and j["same"] == len(by_llm) and j["k"] == 2  # celsius_table's two nearest
        reasked = len(oracle.asked)  # type: ignore[attr-defined]  # distinct_sorted's pairs, asked again once
        assert reasked >= 1 and j["teacher"]["calls"] == j["candidates"] + 2 + reasked  # and the two invalid
        asked = len(server.requests)
        again, _ = judged(tmp_path, "again", exercises, "exercise", server)
        assert len(server.requests) == asked and again["llm_judge"]["same"] == j["same"]  # all from the cache

        code = [{"id": tid, "text": text} for tid, text in AS_CODE.items()]
        summary, flags = judged(tmp_path, "code", code, "code", server, k=3)
    named = {f["id"] for f in flags if f["task_id"] == f["id"]}
    # Each function of a file is judged against its own nearest problems, by its source and by its docstring
    # (HumanEval/43's rephrasing is 26th nearest to its problem by source, 2nd by docstring: docs/cli.md).
    assert named == set(TWINS)
    assert summary["llm_judge"]["candidates_per_sample"] > 2  # the file's nearest, and each function's


@pytest.mark.slow
def test_without_the_judge_corpus_code_names_the_twins_the_exercise_sweep_names(tmp_path: Path) -> None:
    """Exercises are swept against every problem of each function's arity; corpus code runs each function
    against its nearest problems only (by its source, and by its docstring alone), and must name as many."""
    named = {}
    for kind, texts in (("exercise", {tid: code for tid, (_, code) in TWINS.items()}), ("code", AS_CODE)):
        data = tmp_path / f"{kind}.jsonl"
        data.write_text("".join(json.dumps({"id": tid, "text": t}) + "\n" for tid, t in texts.items()))
        summary = run_decontam(data, tmp_path / kind, kind=kind, workers=2)
        flags = [json.loads(line) for line in (tmp_path / kind / "flags.jsonl").read_text().splitlines()]
        named[kind] = {f["id"] for f in flags if f["task_id"] == f["id"]}
    # Two whose task detail changed fail their problem's tests and share no AST with it: left to the judge.
    assert named["exercise"] == set(TWINS) - {"HumanEval/16", "HumanEval/34"}
    assert named["code"] == named["exercise"]
    notes = summary["execution"]
    assert notes["corpus_function_programs"] <= notes["corpus_functions"]


def test_decontam_says_when_the_judge_cannot_run_and_reads_only_a_final_verdict(tmp_path: Path, cli_env: dict) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "text": ORDINARY[0]}) + "\n")
    done = subprocess.run(phi1_cmd("decontam", "--data", str(data), "--out", str(tmp_path / "o"), "--llm-judge",
                                   "--encoder", "none"), env=cli_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "llm judge:   not run: the offline teacher is not an LLM" in done.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["per_detector"]["llm"] == 0 and "not run" in summary["llm_judge"]["status"]
    assert parse_verdict("Looks alike.\nVerdict: same") == "same"
    assert parse_verdict("Verdict: DIFFERENT.") == "different"
    assert parse_verdict("Verdict: same\nbut I am not sure") is None and parse_verdict("") is None


def test_phi1_clean_removes_what_the_judge_names_and_keys_the_teacher_only_while_it_judges(tmp_path: Path) -> None:
    from phi1.clean import run_clean
    from phi1.config import load_config
    from phi1.rundir import read_table
    from phi1.steps import STEPS
    from test_synth_clean import _write_stage

    # A twin whose task detail changed (it fails the problem's tests) among ordinary corpus code.
    rows = [{"text": AS_CODE["HumanEval/34"]}, *({"text": code} for code in ORDINARY)]
    _write_stage(tmp_path, "filtered", rows)
    oracle.asked = {}  # type: ignore[attr-defined]
    with FakeOpenAI(respond=oracle) as server:
        teacher = [f"teacher.base_url={server.url}", "teacher.backend=openai", "teacher.model=judge"]
        cfg = load_config(None, ["clean.llm_judge=true", *teacher])
        judge_teacher = make_teacher(cfg.teacher, tmp_path / "teacher-cache.sqlite")
        m = run_clean(tmp_path, cfg, teacher=judge_teacher)
    judge_teacher.cache.close()  # as when the run is over: the cache's write-ahead log folded into the file
    assert m["funnel"]["code"]["benchmark_llm"] == 1 and m["funnel"]["code"]["kept"] == len(ORDINARY)
    kept = {r["text"] for r in read_table(tmp_path / "clean").to_pylist()}
    assert AS_CODE["HumanEval/34"] not in kept and all(code in kept for code in ORDINARY)
    # celsius_table's pairs never get a verdict line: invalid, so kept (never judged different)
    assert m["llm_judge"]["same"] >= 1 and m["llm_judge"]["invalid"] >= 2 and m["llm_judge"]["candidates"] >= len(rows)
    step = STEPS["clean"]
    off = load_config(None, teacher)
    assert "teacher" in step.declared(cfg)[0] and "judge" in step.declared(cfg)[1]
    assert "teacher" not in step.declared(off)[0]  # with the judge off, the teacher changes no clean key
    # phi1 view shows the judge's own answers beside the pair, read from the run's teacher cache.
    import pyarrow.parquet as pq
    from starlette.testclient import TestClient

    from phi1.view.app import make_app

    flags = pq.read_table(tmp_path / "clean" / "benchmark_flags.parquet").to_pylist()
    flag = next(f for f in flags if f["detector"] == "llm")
    page = TestClient(make_app([tmp_path])).get(f"/a/pair/{flag['id']}/{flag['task_id']}").text
    assert "The judge's answers" in page and ": same</h3>" in page and "Verdict: same" in page
