"""Contamination: execution twins (renamed, restructured copies of benchmark problems), `phi1 decontam`,
the offline catalogue free of HumanEval twins, n-gram hits that count, statement-boundary truncation."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from conftest import phi1_cmd
from phi1.clean.decontam import run_decontam
from phi1.clean.detectors import Thresholds
from phi1.clean.driver import detect_texts
from phi1.clean.problems import load_benchmark_problems
from phi1.clean.twins import functions_of, name_similarity
from phi1.sandbox import Sandbox

# Renamed and restructured twins of HumanEval problems (each passes its problem's tests once renamed).
TWINS = {
    "HumanEval/9": '''
from itertools import accumulate

def running_maximum(values):
    """The largest value seen so far, at every position."""
    return list(accumulate(values, max))
''',
    "HumanEval/31": """
def check_prime(k):
    if k < 2:
        return False
    return all(k % d for d in range(2, int(k ** 0.5) + 1))
""",
    "HumanEval/55": '''
def fibonacci_number(n):
    """Recursion instead of the reference's loop."""
    return n if n < 2 else fibonacci_number(n - 1) + fibonacci_number(n - 2)
''',
    "HumanEval/13": """
def common_divisor_greatest(x, y):
    return x if y == 0 else common_divisor_greatest(y, x % y)
""",
    "HumanEval/3": """
def balance_goes_below_zero(ops):
    total = 0
    for amount in ops:
        total = total + amount
        if total < 0:
            return True
    return False
""",
    "HumanEval/7": """
def substring_filter(strings, substring):
    return list(filter(lambda text: substring in text, strings))
""",
    # Renamed outright: no word of the name, no docstring in common; only running it tells.
    "HumanEval/12": """
def process_items(items):
    best = None
    for item in items:
        if best is None or len(item) > len(best):
            best = item
    return best
""",
    "HumanEval/23": """
def helper(value):
    count = 0
    for _ in value:
        count += 1
    return count
""",
}

# Ordinary exercises on other topics.
ORDINARY = [
    '''
def celsius_table(start, stop, step):
    """Rows of (celsius, fahrenheit) from start to stop."""
    return [(c, c * 9 / 5 + 32) for c in range(start, stop, step)]
''',
    '''
def initials_of(full_name):
    """'Ada King Lovelace' -> 'A.K.L.'"""
    return "".join(part[0].upper() + "." for part in full_name.split())
''',
    '''
def histogram_line(label, count, width):
    """A text bar: the label padded to `width`, then one '#' per count."""
    return label.ljust(width) + "#" * count
''',
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_execution_flags_renamed_twins_with_the_right_task_and_nothing_else(tmp_path: Path) -> None:
    rows = [{"id": tid, "text": code} for tid, code in TWINS.items()]
    rows += [{"id": f"ordinary-{i}", "text": code} for i, code in enumerate(ORDINARY)]
    summary = run_decontam(_write(tmp_path / "data.jsonl", rows), tmp_path / "out", encoder=None, workers=2)
    flags = [json.loads(line) for line in (tmp_path / "out" / "flags.jsonl").read_text().splitlines()]
    twins = {(f["id"], f["task_id"]) for f in flags if "execution" in f["detectors"]}
    for tid in TWINS:
        assert (tid, tid) in twins, (tid, sorted(twins))
    assert not any(f["id"].startswith("ordinary") for f in flags), flags
    assert summary["per_detector"]["execution"] >= len(TWINS) and summary["samples"] == len(rows)
    assert set(summary["per_detector"]) == {"ngram", "embedding", "ast", "execution", "llm"}
    assert summary["llm_judge"]["status"].startswith("off")  # asked for with --llm-judge only


def test_a_corpus_function_is_run_with_the_imports_it_uses_and_a_missing_module_does_not_hide_it(
    tmp_path: Path,
) -> None:
    """A file of The Stack imports what the sandbox may not have (a third-party package, another OS's
    module); a twin that needs none of it is still a twin."""
    module = "import phi1_no_such_package, winreg\nfrom typing import (\n    List,\n)\n" + TWINS["HumanEval/9"]
    module += "\n\ndef load_settings(path: str) -> dict:\n    return phi1_no_such_package.read(path)\n"
    functions = {f.name: f.source for f in functions_of(module, "code", 0)}
    assert (
        "winreg" not in functions["running_maximum"]
        and "from itertools import accumulate" in functions["running_maximum"]
    )
    assert "phi1_no_such_package" in functions["load_settings"] and "List" not in functions["load_settings"]
    data = _write(tmp_path / "data.jsonl", [{"id": "file", "text": module}])
    run_decontam(data, tmp_path / "out", kind="code", workers=2)
    flags = [json.loads(line) for line in (tmp_path / "out" / "flags.jsonl").read_text().splitlines()]
    assert any(f["task_id"] == "HumanEval/9" and "execution" in f["detectors"] for f in flags), flags


def test_decontam_cli_reads_parquet_and_a_text_field(tmp_path: Path, cli_env: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"name": "t", "code": TWINS["HumanEval/13"]}]), tmp_path / "d.parquet")
    proc = subprocess.run(phi1_cmd("decontam", "--data", str(tmp_path / "d.parquet"), "--out", str(tmp_path / "o"),
                                   "--text-field", "code", "--id-field", "name", "--encoder", "none"),
                          env=cli_env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    flag = json.loads((tmp_path / "o" / "flags.jsonl").read_text().splitlines()[0])
    assert flag["id"] == "t" and flag["task_id"] == "HumanEval/13" and "execution" in flag["detectors"]
    bad = subprocess.run(phi1_cmd("decontam", "--data", str(tmp_path / "d.parquet"), "--out", str(tmp_path / "p")),
                         env=cli_env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert bad.returncode == 2 and "missing or non-string field 'text'" in bad.stderr


def test_offline_catalogue_holds_no_benchmark_twin() -> None:
    """No family of the offline catalogue matches any HumanEval or MBPP problem by any detector: no twin by
    execution (renamed to the entry point, it fails the problem's tests), no AST tau >= 0.8."""
    from phi1.teacher.offline_exercises import FAMILIES, build

    texts = [build(f, f.key, random.Random(seed)).code for f in FAMILIES for seed in range(3)]
    problems = load_benchmark_problems(True, True)
    assert {p.benchmark for p in problems} == {"humaneval", "mbpp"} and len(problems) == 164 + 974
    with Sandbox(workers=2) as sb:
        found, _ = detect_texts(texts, ["exercise"] * len(texts), tuple(problems), Thresholds(ast=0.8), sb)
    fired = [(texts[i].split("(")[0], problems[j].task_id, m.detectors) for (i, j), m in found.items() if m.detectors]
    assert fired == [], fired


def test_the_ast_detector_matches_what_a_problem_asks_for_not_its_helper_classes() -> None:
    """MBPP/601's answer is `max_chain_length`; its `Pair.__init__` (`self.a = a; self.b = b`) is boilerplate in
    every library: a file holding such a class is no copy of the problem (38 standard library files were
    removed for such methods alone in `make run`'s demo). A module-level helper the entry point calls
    (MBPP/367's `get_height`) is part of the answer and still matches."""
    by_id = {p.task_id: p for p in load_benchmark_problems(True, True)}
    problems = tuple(by_id[t] for t in ("MBPP/601", "MBPP/367", "HumanEval/50"))
    library = (
        "class Interval:\n    def __init__(self, start, end):\n        self.start = start\n        self.end = end\n\n"
        "    def __repr__(self):\n        return f'Interval({self.start}, {self.end})'\n"
    )
    chain = by_id["MBPP/601"].solution.split("def max_chain_length")[1]
    copied = "def longest_chain" + chain.replace("mcl", "best")
    helper = (
        "def depth(node):\n    if node is None:\n        return 0\n"
        "    return max(depth(node.left), depth(node.right)) + 1\n"
    )
    texts = [library, copied, helper]
    with Sandbox(workers=1) as sb:
        found, _ = detect_texts(texts, ["code"] * 3, problems, Thresholds(ast=0.8), sb)
    fired = {(i, problems[j].task_id) for (i, j), m in found.items() if "ast" in m.detectors}
    assert fired == {(1, "MBPP/601"), (2, "MBPP/367")}


def test_the_composed_families_the_offline_teacher_uses_hold_no_benchmark_twin() -> None:
    """`scan` excluded the compositions phi1's detectors match to a benchmark problem; one exercise of each kept
    composition, drawn with seeds the scan never used (other names, parameters, phrasing, solution style), is
    matched to none."""
    from phi1.teacher.offline_composed import composed_families, every_composition, excluded, scan

    kept = composed_families()
    assert len(kept) >= 150 and len(kept) + len(excluded()) == len(every_composition())
    assert scan(kept, 1, salt="test") == {}


def test_name_similarity() -> None:
    assert name_similarity("fib", "fibonacci") == 1.0
    assert name_similarity("rolling_max", "running_max") == 0.5
    assert name_similarity("is_prime", "check_prime") == 1.0
    assert name_similarity("below_zero", "celsius_table") == 0.0


def test_truncation_keeps_whole_statements() -> None:
    import ast
    import sysconfig

    from phi1.curate.annotate import truncate_code
    from phi1.teacher.offline import edu_score

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    long_files = [p.read_text() for p in sorted(stdlib.glob("*.py")) if p.stat().st_size > 20_000][:40]
    for text in long_files:
        cut = truncate_code(text, 6_000)
        assert len(cut) <= 6_000 and text.startswith(cut)
        ast.parse(cut)  # a whole-statement prefix: still Python
        if "def " in cut:
            assert edu_score(cut)[0] > 0  # no longer scored 0 for a cut in the middle of a statement
    assert truncate_code("x = 1\n", 100) == "x = 1\n"


@pytest.mark.parametrize("planted", [True, False])
def test_ngram_hits_count_real_hits(tmp_path: Path, planted: bool) -> None:
    import pyarrow.parquet as pq

    from phi1.clean import run_clean
    from phi1.config import load_config
    from phi1.rundir import Stage, write_shard

    he = {p.task_id: p for p in load_benchmark_problems(True, False)}["HumanEval/0"]
    words = he.prompt.split()
    text = "# notes\n# " + " ".join(words[words.index("Check") : words.index("Check") + 14]) + "\nx = 1\n"
    docs = [{"id": "a", "text": text if planted else "# nothing to see\nx = 1\n"}, {"id": "b", "text": "y = 2\n"}]
    stage = Stage(tmp_path, "filtered", "k")
    stage.begin({}, {})
    write_shard(stage.shard_path(0), docs)
    stage.finish()
    m = run_clean(tmp_path, load_config(None, ["clean.execution=false", "clean.mbpp=false"]))
    table = {r["task_id"]: r for r in pq.read_table(tmp_path / "clean" / "benchmark_similarity.parquet").to_pylist()}
    assert table["HumanEval/0"]["ngram_hits"] == (1 if planted else 0)
    assert m["funnel"]["code"].get("benchmark_ngram", 0) == (1 if planted else 0)


def test_phi1_clean_and_phi1_decontam_flag_the_same_sample_problem_detector_triples(
    tmp_path: Path, cli_env: dict
) -> None:
    """One driver: the exercises of a run, checked by `phi1 clean` inside the run and by `phi1 decontam` as a
    file, give the same (sample, problem, detector) flags: execution twins, an n-gram copy of a docstring, an
    AST copy of a canonical solution, and nothing for the ordinary exercises."""
    import pyarrow.parquet as pq

    from phi1.rundir import Stage, write_shard

    he = {p.task_id: p for p in load_benchmark_problems(True, False)}
    copied = he["HumanEval/2"]
    rows = [{"id": tid, "text": code} for tid, code in TWINS.items()]
    rows.append({"id": "docstring-copy", "text": copied.prompt + "    return number - int(number)\n"})
    rows.append({"id": "solution-copy", "text": he["HumanEval/12"].solution.replace("def longest", "def longest_of")})
    rows += [{"id": f"ordinary-{i}", "text": code} for i, code in enumerate(ORDINARY)]
    run = tmp_path / "run"
    stage = Stage(run, "exercises", "k")
    stage.begin({}, {})
    write_shard(stage.shard_path(0), rows)
    stage.finish()
    common = dict(env=cli_env, capture_output=True, text=True, timeout=900)
    cleaned = subprocess.run(phi1_cmd("clean", "--run-dir", str(run), "--set", "curate.encoder=hashing"), **common)
    assert cleaned.returncode == 0, cleaned.stderr
    checked = subprocess.run(phi1_cmd("decontam", "--data", str(run / "exercises"), "--out", str(tmp_path / "d"),
                                      "--encoder", "hashing"), **common)  # fmt: skip
    assert checked.returncode == 0, checked.stderr

    by_clean = {(r["id"], r["task_id"], r["detector"])
                for r in pq.read_table(run / "clean" / "benchmark_flags.parquet").to_pylist()}  # fmt: skip
    flags = [json.loads(line) for line in (tmp_path / "d" / "flags.jsonl").read_text().splitlines()]
    by_decontam = {(f["id"], f["task_id"], d) for f in flags for d in f["detectors"]}
    assert by_clean == by_decontam
    assert {d for _, _, d in by_clean} >= {"execution", "ngram", "ast"}
    assert ("docstring-copy", "HumanEval/2", "ngram") in by_clean
    assert ("solution-copy", "HumanEval/12", "ast") in by_clean
    assert all((tid, tid, "execution") in by_clean for tid in TWINS)
    assert not any(i.startswith("ordinary") for i, _, _ in by_clean)


def test_the_sweep_program_is_a_module_the_tests_can_call(capsys: pytest.CaptureFixture[str]) -> None:
    """phi1/clean/sweep_program.py, called in this process as the sandbox runs it after a function, on tests
    the driver compiled (`compiled_cases`): the problems whose tests pass with the function as their entry
    point, printed for the driver. A test that does not compile is left out, as it could never pass."""
    import phi1.clean.sweep_program as sweep
    from phi1.clean.twins import compiled_cases

    namespace = vars(sweep)
    exec("def double(x):\n    return 2 * x\n", namespace)  # the training function, as stage 0 defines it
    try:
        problems = [("twice", "assert twice(3) == 6"), ("triple", "assert triple(3) == 9"),
                    ("slow", "while True:\n    pass"), ("broken", "assert broken(3) ==")]  # fmt: skip
        cases = sweep._phi1_cases(compiled_cases(problems, [0, 1, 2, 3], {}))
        assert [c[0] for c in cases] == [0, 1, 2]
        assert sweep._phi1_sweep(cases, "double", 0.2) == [0]
        assert capsys.readouterr().out.strip() == "PHI1-TWINS [0]"
    finally:
        del namespace["double"]


class _CountingSandbox(Sandbox):
    """The real sandbox, counting the programs it is given."""

    programs = 0

    def map(self, programs, limits=None):  # type: ignore[no-untyped-def]
        programs = list(programs)
        self.programs += len(programs)
        return super().map(programs, limits)


def test_find_twins_runs_each_function_once_for_all_its_problems_and_alone_again_if_that_program_dies() -> None:
    """Corpus candidates come as (function, problem) pairs, most functions in several (on the demo, 1,683
    pairs of 383 distinct functions): one sandboxed program per function tries all of its problems, as the sweep
    does. A program that dies before printing its verdict (here a function that ends the process on one
    problem's input) has its pairs run one by one, so no twin is lost to a neighbour's crash or hang."""
    from phi1.clean.twins import Function, find_twins

    doubling = Function(0, "double", 1, "def double(x):\n    return 2 * x\n")
    # Ends the whole process when given a string: its group's program dies on "shout" before any verdict.
    exiting = Function(1, "scale", 1, "import os\n\ndef scale(x):\n    if isinstance(x, str):\n"
                                      "        os._exit(0)\n    return 3 * x\n")  # fmt: skip
    problems = [
        ("twice", "assert twice(3) == 6"),
        ("triple", "assert triple(3) == 9"),
        ("shout", "assert shout('a') == 'A'"),
        ("slow", "assert slow(2) == 4\nwhile True:\n    pass"),
    ]
    # The same function appears as a separate object in each of its pairs, as the execution detector makes them.
    functions = [doubling, doubling, doubling, exiting, exiting, exiting]
    pairs = [(0, 0), (1, 1), (2, 3), (3, 2), (4, 1), (5, 0)]
    with _CountingSandbox(workers=2) as sandbox:
        twins = find_twins(functions, problems, pairs, sandbox, timeout_s=1.0)
        grouped = sandbox.programs
    assert [(t.sample, t.problem, t.function) for t in twins] == [(0, 0, "double"), (1, 1, "scale")]
    assert grouped == 2 + 3  # one per function, then the dead program's three pairs alone


def test_benchmark_vectors_are_cached_by_encoder_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from phi1.clean.detectors.embedding import Vectors, unit
    from phi1.curate.embed import encode, load_encoder

    monkeypatch.setenv("PHI1_CACHE_DIR", str(tmp_path / "cache"))
    problems = load_benchmark_problems(mbpp=False)[:12]
    first = Vectors("minilm", problems).bench
    cached = sorted((tmp_path / "cache" / "vectors").glob("*.npy"))
    assert len(cached) == 1
    texts = [p.solution if p.prompt in p.solution else p.prompt + "\n" + p.solution for p in problems]
    fresh = unit(encode(load_encoder("minilm"), texts))
    assert np.allclose(first, fresh, atol=1e-6)  # the cached vectors are the encoder's own
    again = Vectors("minilm", problems)
    assert np.array_equal(again.bench, first) and again.encoder is None  # read back, no model loaded
    Vectors("minilm", problems[:11])  # other texts: another entry, the first one untouched
    assert len(list((tmp_path / "cache" / "vectors").glob("*.npy"))) == 2
    cached[0].write_bytes(b"not an array")  # a damaged entry is recomputed, never trusted
    assert np.array_equal(Vectors("minilm", problems).bench, first)
    assert np.array_equal(Vectors("hashing", problems).bench, Vectors("hashing", problems).bench)
    assert len(list((tmp_path / "cache" / "vectors").glob("*.npy"))) == 2  # the hashing encoder is not cached


def test_the_same_function_in_several_samples_is_run_once_and_flagged_in_each() -> None:
    """A textbook section shows its function more than once, and sections repeat functions (on the demo, 600
    textbook functions are 200 distinct ones): the sweep runs each distinct function once and flags every sample
    that holds a twin; `find_twins` does the same across samples."""
    from phi1.clean.twins import Function, find_twins, sweep_twins

    doubling = "def double(x):\n    return 2 * x\n"
    halving = "def halve(x):\n    return x // 2\n"
    functions = [Function(0, "double", 1, doubling), Function(0, "double", 1, doubling),
                 Function(1, "double", 1, doubling), Function(2, "halve", 1, halving)]  # fmt: skip
    problems = [("twice", "assert twice(3) == 6"), ("triple", "assert triple(3) == 9")]
    with _CountingSandbox(workers=2) as sandbox:
        swept = sweep_twins(functions, problems, [1, 1], sandbox)
        assert sandbox.programs == 2
        found = find_twins(functions, problems, [(0, 0), (1, 1), (2, 0), (3, 0)], sandbox)
        assert sandbox.programs == 2 + 2
    assert sorted({(t.sample, t.problem, t.function) for t in swept}) == [(0, 0, "double"), (1, 0, "double")]
    assert [(t.sample, t.problem, t.function) for t in found] == [(0, 0, "double"), (1, 0, "double")]
